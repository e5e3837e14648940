// Command sealgate-go-e2e drives the Temporal Go SDK (grpc-go) for the
// end-to-end tests in tests/e2e/test_go_sdk.py. Subcommands:
//
//	scenario  a worker and a client run the full scenario against -address
//	errors    error semantics of the Go client (and a worker) against -address
//	protoset  writes the Temporal API the binary was built with (a FileDescriptorSet)
//
// Each prints one JSON object on its last stdout line; logs go to stderr.
// Every wait is bounded by -timeout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

type common struct {
	address   string
	namespace string
	taskQueue string
	token     string
	timeout   time.Duration
}

func (c *common) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.address, "address", "", "Temporal frontend (or sealgate) host:port")
	fs.StringVar(&c.namespace, "namespace", "default", "namespace")
	fs.StringVar(&c.taskQueue, "task-queue", "", "task queue (the worker polls it)")
	fs.StringVar(&c.token, "token", "", "unique token: workflow ids and canaries are made from it")
	fs.DurationVar(&c.timeout, "timeout", 90*time.Second, "bound on the whole run")
}

func (c *common) check() {
	if c.address == "" || c.taskQueue == "" || c.token == "" {
		fail("-address, -task-queue and -token are required")
	}
}

// pollFailure holds the first error a worker's poll got (the SDK only logs
// and retries them), so a run can stop at once with the reason instead of
// waiting out its timeout.
var pollFailure atomic.Value

func checkPolls() {
	if v := pollFailure.Load(); v != nil {
		fail("a worker poll failed: %s", v)
	}
}

// watchingLogger logs warnings and errors to stderr and records poll failures.
type watchingLogger struct{ inner sdklog.Logger }

func (l watchingLogger) Debug(msg string, kv ...any) { l.inner.Debug(msg, kv...) }
func (l watchingLogger) Info(msg string, kv ...any)  { l.inner.Info(msg, kv...) }
func (l watchingLogger) Error(msg string, kv ...any) { l.inner.Error(msg, kv...) }
func (l watchingLogger) Warn(msg string, kv ...any) {
	if strings.HasPrefix(msg, "Failed to poll") {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == "Error" {
				pollFailure.CompareAndSwap(nil, fmt.Sprint(kv[i+1]))
			}
		}
	}
	l.inner.Warn(msg, kv...)
}
func (l watchingLogger) With(kv ...any) sdklog.Logger {
	return watchingLogger{sdklog.With(l.inner, kv...)}
}

func (c *common) dial(identity string) client.Client {
	logger := watchingLogger{sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.DialContext(ctx, client.Options{
		HostPort:  c.address,
		Namespace: c.namespace,
		Identity:  identity,
		Logger:    logger,
	})
	if err != nil {
		fail("dial %s: %v", c.address, err)
	}
	return cl
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sealgate-go-e2e: "+format+"\n", args...)
	os.Exit(1)
}

func printJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail("json: %v", err)
	}
	fmt.Println(string(b))
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: sealgate-go-e2e scenario|errors [flags] | protoset [-no-rpc-status] OUT.fds")
	}
	var c common
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	c.flags(fs)
	switch os.Args[1] {
	case "scenario":
		var s scenarioFlags
		fs.StringVar(&s.nexusEndpoint, "nexus-endpoint", "", "Nexus endpoint targeting -task-queue (empty: no Nexus operation)")
		fs.StringVar(&s.searchAttribute, "search-attribute", "CustomKeyword", "a Keyword search attribute registered on the server")
		_ = fs.Parse(os.Args[2:])
		c.check()
		printJSON(runScenario(c, s))
	case "protoset":
		noStatus := fs.Bool("no-rpc-status", false, "leave google/rpc/status.proto out")
		_ = fs.Parse(os.Args[2:])
		if fs.NArg() != 1 {
			fail("usage: sealgate-go-e2e protoset [-no-rpc-status] OUT.fds")
		}
		out := fs.Arg(0)
		printJSON(map[string]any{"file": out, "files": writeProtoset(out, !*noStatus)})
	case "errors":
		queries := fs.Bool("queries", true, "also the query cases (they need a worker)")
		_ = fs.Parse(os.Args[2:])
		c.check()
		printJSON(runErrors(c, *queries))
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}
