package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// QueryFailureMessage is what the failing query handler returns.
const QueryFailureMessage = "go query handler failed on purpose"

// ErrorsWorkflow answers the "fails" query with an error and waits until it
// is terminated.
func ErrorsWorkflow(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, "fails", func() (string, error) {
		return "", errors.New(QueryFailureMessage)
	}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, "ok", func() (string, error) { return "ok", nil }); err != nil {
		return err
	}
	workflow.GetSignalChannel(ctx, "stop").Receive(ctx, nil)
	return nil
}

type normalizer []string // pairs: value, placeholder

// knownQueryTypes is the list in the Go SDK's "unknown queryType" message,
// which the SDK prints in map order.
var knownQueryTypes = regexp.MustCompile(`KnownQueryTypes=\[([^\]]*)\]`)

func (n normalizer) apply(s string) string {
	for i := 0; i+1 < len(n); i += 2 {
		if n[i] != "" {
			s = strings.ReplaceAll(s, n[i], n[i+1])
		}
	}
	return knownQueryTypes.ReplaceAllStringFunc(s, func(m string) string {
		types := strings.Fields(knownQueryTypes.FindStringSubmatch(m)[1])
		sort.Strings(types)
		return "KnownQueryTypes=[" + strings.Join(types, " ") + "]"
	})
}

// describeErr reports an error as the Go client sees it: its Go type, which
// serviceerror types it unwraps to, the gRPC status (code, message, detail
// types) and, for the Temporal-specific types, their fields.
func describeErr(err error, norm normalizer) map[string]any {
	if err == nil {
		return map[string]any{"error": nil}
	}
	out := map[string]any{
		"go_type": fmt.Sprintf("%T", err),
		"error":   norm.apply(err.Error()),
	}
	var as []string
	var nf *serviceerror.NotFound
	var ae *serviceerror.AlreadyExists
	var was *serviceerror.WorkflowExecutionAlreadyStarted
	var qf *serviceerror.QueryFailed
	var ia *serviceerror.InvalidArgument
	if errors.As(err, &nf) {
		as = append(as, "NotFound")
		out["not_found"] = map[string]any{"current_cluster": nf.CurrentCluster, "active_cluster": nf.ActiveCluster}
	}
	if errors.As(err, &ae) {
		as = append(as, "AlreadyExists")
	}
	if errors.As(err, &was) {
		as = append(as, "WorkflowExecutionAlreadyStarted")
		out["already_started"] = map[string]any{"start_request_id": was.StartRequestId, "run_id": was.RunId}
	}
	if errors.As(err, &ia) {
		as = append(as, "InvalidArgument")
	}
	if errors.As(err, &qf) {
		as = append(as, "QueryFailed")
		q := map[string]any{"message": norm.apply(qf.Message), "has_failure": qf.Failure != nil}
		if f := qf.Failure; f != nil {
			q["failure_message"] = norm.apply(f.GetMessage())
			q["failure_source"] = f.GetSource()
			q["failure_has_stack_trace"] = f.GetStackTrace() != ""
			q["failure_encoded_attributes_encoding"] = string(f.GetEncodedAttributes().GetMetadata()["encoding"])
			if a := f.GetApplicationFailureInfo(); a != nil {
				q["failure_application_type"] = a.GetType()
			}
		}
		out["query_failed"] = q
	}
	out["unwraps_to"] = as
	if st := serviceerror.ToStatus(err); st != nil {
		var types []string
		for _, d := range st.Proto().GetDetails() {
			types = append(types, d.GetTypeUrl())
		}
		out["grpc"] = map[string]any{"code": st.Code().String(), "message": norm.apply(st.Message()), "details": types}
	}
	return out
}

func runErrors(c common, queries bool) map[string]any {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	missing := "go-errors-missing-" + c.token
	wid := "go-errors-" + c.token

	if queries { // the query cases need a worker; the others only a client
		wc := c.dial("go-e2e-errors-worker")
		defer wc.Close()
		w := worker.New(wc, c.taskQueue, worker.Options{})
		w.RegisterWorkflow(ErrorsWorkflow)
		if err := w.Start(); err != nil {
			fail("worker start: %v", err)
		}
		defer w.Stop()
	}
	cl := c.dial("go-e2e-errors-client")
	defer cl.Close()

	out := map[string]any{"workflow_id": wid, "missing_id": missing}
	norm := normalizer{missing, "<missing-id>"}

	// A workflow that does not exist.
	_, err := cl.DescribeWorkflowExecution(ctx, missing, "")
	out["describe_missing"] = describeErr(err, norm)
	var none string
	err = cl.GetWorkflow(ctx, missing, "").Get(ctx, &none)
	out["result_missing"] = describeErr(err, norm)
	err = cl.SignalWorkflow(ctx, missing, "", "stop", nil)
	out["signal_missing"] = describeErr(err, norm)
	_, err = cl.QueryWorkflow(ctx, missing, "", "ok")
	out["query_missing"] = describeErr(err, norm)

	// The first start is a raw call so the test knows its request id.
	requestID := uuid.NewString()
	first, err := cl.WorkflowService().StartWorkflowExecution(ctx, &workflowservice.StartWorkflowExecutionRequest{
		Namespace:    c.namespace,
		WorkflowId:   wid,
		WorkflowType: &commonpb.WorkflowType{Name: "ErrorsWorkflow"},
		TaskQueue:    &taskqueuepb.TaskQueue{Name: c.taskQueue},
		RequestId:    requestID,
		Identity:     "go-e2e-errors-client",
	})
	if err != nil {
		fail("first start: %v", err)
	}
	runID := first.GetRunId()
	out["first_run_id"] = runID
	out["first_request_id"] = requestID
	norm = append(norm, wid, "<workflow-id>", runID, "<run-id>", requestID, "<request-id>")
	opts := client.StartWorkflowOptions{ID: wid, TaskQueue: c.taskQueue, WorkflowExecutionErrorWhenAlreadyStarted: true}
	_, err = cl.ExecuteWorkflow(ctx, opts, ErrorsWorkflow)
	out["start_twice"] = describeErr(err, norm)
	var was *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &was) {
		out["start_twice_names_first"] = map[string]any{
			"request_id": was.StartRequestId == requestID,
			"run_id":     was.RunId == runID,
		}
	}
	opts.WorkflowExecutionErrorWhenAlreadyStarted = false
	again, err := cl.ExecuteWorkflow(ctx, opts, ErrorsWorkflow)
	if err != nil {
		out["start_twice_default"] = describeErr(err, norm)
	} else {
		out["start_twice_default"] = map[string]any{"error": nil, "same_run": again.GetRunID() == runID}
	}
	_, err = cl.WorkflowService().StartWorkflowExecution(ctx, &workflowservice.StartWorkflowExecutionRequest{
		Namespace:    c.namespace,
		WorkflowId:   wid,
		WorkflowType: &commonpb.WorkflowType{Name: "ErrorsWorkflow"},
		TaskQueue:    &taskqueuepb.TaskQueue{Name: c.taskQueue},
		RequestId:    uuid.NewString(),
		Identity:     "go-e2e-errors-client",
	})
	out["start_twice_raw"] = describeErr(err, norm)

	if !queries {
		if err := cl.TerminateWorkflow(ctx, wid, "", "test done"); err != nil {
			fail("terminate: %v", err)
		}
		return out
	}

	// Queries: wait until the worker answers one, then the failing ones.
	var okErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		qctx, qcancel := context.WithTimeout(ctx, 3*time.Second)
		_, okErr = cl.QueryWorkflow(qctx, wid, "", "ok")
		qcancel()
		if okErr == nil {
			break
		}
		checkPolls()
	}
	if okErr != nil {
		fail("the ok query never succeeded: %v", okErr)
	}
	_, err = cl.QueryWorkflow(ctx, wid, "", "fails")
	out["query_failed"] = describeErr(err, norm)
	_, err = cl.QueryWorkflow(ctx, wid, "", "no-such-query")
	out["query_unknown"] = describeErr(err, norm)

	if err := cl.TerminateWorkflow(ctx, wid, "", "test done"); err != nil {
		fail("terminate: %v", err)
	}
	return out
}
