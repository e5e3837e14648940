package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nexus-rpc/sdk-go/nexus"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/temporalnexus"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

const (
	nexusService = "sealgate-go-e2e"
	// FailureType is the ApplicationError type of the failing activity.
	FailureType = "GoScenarioFailure"
)

type scenarioFlags struct {
	nexusEndpoint   string
	searchAttribute string
}

// ScenarioInput is the workflow's input: the canary-bearing argument plus
// what the workflow needs to know (no secret in the Nexus endpoint name).
type ScenarioInput struct {
	Arg             string
	NexusEndpoint   string
	SearchAttribute string
}

// ScenarioResult is everything the workflow saw, returned as its result.
type ScenarioResult struct {
	Input           string
	Charged         string
	Local           string
	Child           string
	FailureMessage  string
	FailureType     string
	FailureDetail   string
	NexusSync       string
	NexusWorkflow   string
	Signal          string
	Update          string
	Memo            string
	SearchAttribute string
}

// seen records what activities and Nexus handlers received, in this process.
var seen sync.Map

func see(key, value string) { seen.Store(key, value) }

func seenMap() map[string]string {
	out := map[string]string{}
	seen.Range(func(k, v any) bool {
		out[k.(string)] = v.(string)
		return true
	})
	return out
}

// --- activities ----------------------------------------------------------------------

func ChargeCard(ctx context.Context, card string) (string, error) {
	see("activity", card)
	return "charged " + card, nil
}

func LocalEcho(ctx context.Context, arg string) (string, error) {
	see("local_activity", arg)
	return "local got " + arg, nil
}

// FailWithDetails fails (not retryable) with a message and a detail made
// from its argument, so both carry the canary.
func FailWithDetails(ctx context.Context, arg string) error {
	see("failing_activity", arg)
	return temporal.NewApplicationErrorWithOptions("go activity failed on purpose: "+arg, FailureType,
		temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{arg + "-failure-detail"}})
}

// --- workflows -----------------------------------------------------------------------

func ChildWorkflow(ctx workflow.Context, arg string) (string, error) {
	return "child got " + arg, nil
}

func NexusHandlerWorkflow(ctx workflow.Context, arg string) (string, error) {
	return "nexus workflow got " + arg, nil
}

func ScenarioWorkflow(ctx workflow.Context, in ScenarioInput) (*ScenarioResult, error) {
	r := &ScenarioResult{Input: in.Arg}
	stage := "started"
	var signal, update string
	if err := workflow.SetQueryHandler(ctx, "stage", func() (string, error) { return stage, nil }); err != nil {
		return nil, err
	}
	if err := workflow.SetUpdateHandler(ctx, "set_value", func(ctx workflow.Context, v string) (string, error) {
		update = v
		return "accepted " + v, nil
	}); err != nil {
		return nil, err
	}
	signals := workflow.GetSignalChannel(ctx, "add_note")
	workflow.Go(ctx, func(ctx workflow.Context) { signals.Receive(ctx, &signal) })

	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	if err := workflow.ExecuteActivity(actx, ChargeCard, in.Arg+"-card").Get(ctx, &r.Charged); err != nil {
		return nil, err
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second})
	if err := workflow.ExecuteLocalActivity(lctx, LocalEcho, in.Arg+"-local").Get(ctx, &r.Local); err != nil {
		return nil, err
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID + "-child"})
	if err := workflow.ExecuteChildWorkflow(cctx, ChildWorkflow, in.Arg+"-child-input").Get(ctx, &r.Child); err != nil {
		return nil, err
	}
	err := workflow.ExecuteActivity(actx, FailWithDetails, in.Arg).Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return nil, fmt.Errorf("the failing activity did not fail with an ApplicationError: %v", err)
	}
	r.FailureMessage, r.FailureType = appErr.Message(), appErr.Type()
	if appErr.HasDetails() {
		if err := appErr.Details(&r.FailureDetail); err != nil {
			return nil, err
		}
	}
	if in.NexusEndpoint != "" {
		nc := workflow.NewNexusClient(in.NexusEndpoint, nexusService)
		opts := workflow.NexusOperationOptions{ScheduleToCloseTimeout: 60 * time.Second}
		if err := nc.ExecuteOperation(ctx, "echo", in.Arg+"-nexus-sync", opts).Get(ctx, &r.NexusSync); err != nil {
			return nil, fmt.Errorf("nexus echo: %w", err)
		}
		if err := nc.ExecuteOperation(ctx, "run-workflow", in.Arg+"-nexus-workflow", opts).Get(ctx, &r.NexusWorkflow); err != nil {
			return nil, fmt.Errorf("nexus run-workflow: %w", err)
		}
	}
	if p, ok := workflow.GetInfo(ctx).Memo.GetFields()["note"]; ok {
		if err := converter.GetDefaultDataConverter().FromPayload(p, &r.Memo); err != nil {
			return nil, err
		}
	}
	r.SearchAttribute, _ = workflow.GetTypedSearchAttributes(ctx).GetKeyword(temporal.NewSearchAttributeKeyKeyword(in.SearchAttribute))

	stage = "waiting with " + in.Arg + "-query-state"
	if err := workflow.Await(ctx, func() bool { return signal != "" && update != "" }); err != nil {
		return nil, err
	}
	r.Signal, r.Update = signal, update
	return r, nil
}

func nexusServiceDef() *nexus.Service {
	svc := nexus.NewService(nexusService)
	echo := nexus.NewSyncOperation("echo", func(ctx context.Context, in string, _ nexus.StartOperationOptions) (string, error) {
		see("nexus_sync", in)
		return "nexus got " + in, nil
	})
	run := temporalnexus.NewWorkflowRunOperation("run-workflow", NexusHandlerWorkflow,
		func(ctx context.Context, in string, o nexus.StartOperationOptions) (client.StartWorkflowOptions, error) {
			see("nexus_workflow", in)
			id := "go-nexus-" + o.RequestID
			see("nexus_workflow_id", id)
			return client.StartWorkflowOptions{ID: id}, nil
		})
	if err := svc.Register(echo, run); err != nil {
		fail("nexus service: %v", err)
	}
	return svc
}

// --- the run -------------------------------------------------------------------------

func runScenario(c common, s scenarioFlags) map[string]any {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	secret := "GOSECRET" + c.token
	arg := secret + "-input"
	wid := "go-scenario-" + c.token
	saValue := "go-visible-" + c.token
	saKey := temporal.NewSearchAttributeKeyKeyword(s.searchAttribute)

	wc := c.dial("go-e2e-worker")
	defer wc.Close()
	w := worker.New(wc, c.taskQueue, worker.Options{})
	w.RegisterWorkflow(ScenarioWorkflow)
	w.RegisterWorkflow(ChildWorkflow)
	w.RegisterWorkflow(NexusHandlerWorkflow)
	w.RegisterActivity(ChargeCard)
	w.RegisterActivity(FailWithDetails)
	w.RegisterActivity(LocalEcho)
	if s.nexusEndpoint != "" {
		w.RegisterNexusService(nexusServiceDef())
	}
	if err := w.Start(); err != nil {
		fail("worker start: %v", err)
	}
	defer w.Stop()

	cl := c.dial("go-e2e-client")
	defer cl.Close()
	run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    wid,
		TaskQueue:             c.taskQueue,
		Memo:                  map[string]any{"note": secret + "-memo"},
		TypedSearchAttributes: temporal.NewSearchAttributes(saKey.ValueSet(saValue)),
	}, ScenarioWorkflow, ScenarioInput{Arg: arg, NexusEndpoint: s.nexusEndpoint, SearchAttribute: s.searchAttribute})
	if err != nil {
		fail("start: %v", err)
	}

	var stage string
	for deadline := time.Now().Add(60 * time.Second); ; {
		qctx, qcancel := context.WithTimeout(ctx, 3*time.Second)
		v, err := cl.QueryWorkflow(qctx, wid, "", "stage")
		qcancel()
		if err == nil {
			if err := v.Get(&stage); err != nil {
				fail("query result: %v", err)
			}
			if strings.HasPrefix(stage, "waiting") {
				break
			}
		}
		checkPolls()
		if time.Now().After(deadline) {
			fail("workflow did not reach its waiting stage in 60s (last %q, err %v)", stage, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	uh, err := cl.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: wid, UpdateName: "set_value", Args: []any{secret + "-update"},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		fail("update: %v", err)
	}
	var updateResult string
	if err := uh.Get(ctx, &updateResult); err != nil {
		fail("update result: %v", err)
	}
	if err := cl.SignalWorkflow(ctx, wid, "", "add_note", secret+"-signal"); err != nil {
		fail("signal: %v", err)
	}
	var result ScenarioResult
	if err := run.Get(ctx, &result); err != nil {
		fail("result: %v", err)
	}

	// What the client reads back through the same address.
	desc, err := cl.DescribeWorkflowExecution(ctx, wid, "")
	if err != nil {
		fail("describe: %v", err)
	}
	var memo, described string
	if p := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()["note"]; p != nil {
		if err := converter.GetDefaultDataConverter().FromPayload(p, &memo); err != nil {
			memo = "undecodable: " + err.Error()
		}
	}
	if p := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[s.searchAttribute]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &described)
	}
	histories := map[string]any{}
	ids := []string{wid, wid + "-child"}
	if id, ok := seen.Load("nexus_workflow_id"); ok {
		ids = append(ids, id.(string))
	}
	for _, id := range ids {
		histories[id] = historyEncodings(ctx, cl, id)
	}
	listed := listBySearchAttribute(ctx, cl, c.namespace, fmt.Sprintf("%s = '%s'", s.searchAttribute, saValue))

	return map[string]any{
		"workflow_id":      wid,
		"run_id":           run.GetRunID(),
		"workflow_ids":     ids,
		"secret":           secret,
		"search_attribute": saValue,
		"nexus":            s.nexusEndpoint != "",
		"worker": map[string]any{
			"workflow": result,
			"handlers": seenMap(),
		},
		"client": map[string]any{
			"query":                      stage,
			"update_result":              updateResult,
			"memo":                       memo,
			"search_attribute":           described,
			"listed_by_search_attribute": listed,
			"histories":                  histories,
		},
	}
}

// historyEncodings reads a workflow's history through the client's address
// and reports each payload's path, encoding and whether it holds the canary.
func historyEncodings(ctx context.Context, cl client.Client, wid string) []map[string]any {
	var out []map[string]any
	it := cl.GetWorkflowHistory(ctx, wid, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			fail("history of %s: %v", wid, err)
		}
		walkPayloads(ev, ev.GetEventType().String(), func(path string, p *commonpb.Payload) {
			out = append(out, map[string]any{
				"path":     path,
				"encoding": string(p.GetMetadata()["encoding"]),
				"data":     string(p.GetData()),
			})
		})
	}
	return out
}

func listBySearchAttribute(ctx context.Context, cl client.Client, namespace, query string) []string {
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := cl.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: query})
		var ids []string
		if err == nil {
			for _, e := range resp.GetExecutions() {
				ids = append(ids, e.GetExecution().GetWorkflowId())
			}
		}
		if len(ids) > 0 || time.Now().After(deadline) {
			if err != nil {
				return []string{"error: " + err.Error()}
			}
			return ids
		}
		time.Sleep(200 * time.Millisecond)
	}
}
