package sealgate.e2e;

import io.grpc.StatusRuntimeException;
import io.temporal.api.common.v1.WorkflowExecution;
import io.temporal.api.common.v1.WorkflowType;
import io.temporal.api.errordetails.v1.QueryFailedFailure;
import io.temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure;
import io.temporal.api.query.v1.WorkflowQuery;
import io.temporal.api.taskqueue.v1.TaskQueue;
import io.temporal.api.workflowservice.v1.DescribeWorkflowExecutionRequest;
import io.temporal.api.workflowservice.v1.QueryWorkflowRequest;
import io.temporal.api.workflowservice.v1.StartWorkflowExecutionRequest;
import io.temporal.api.workflowservice.v1.StartWorkflowExecutionResponse;
import io.temporal.api.workflowservice.v1.WorkflowServiceGrpc.WorkflowServiceBlockingStub;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowExecutionAlreadyStarted;
import io.temporal.client.WorkflowOptions;
import io.temporal.client.WorkflowStub;
import io.temporal.common.converter.DefaultDataConverter;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.workflow.QueryMethod;
import io.temporal.workflow.SignalMethod;
import io.temporal.workflow.Workflow;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Error semantics as the Java client sees them on one address: a missing workflow (describe and
 * get-result), starting an already-running workflow id, a query whose handler throws, and an
 * unknown query type. Each case is made through the SDK and as a raw grpc-java call, and reports
 * the exception chain with each gRPC status's code, description and details.
 */
final class Errors {
  static final String QUERY_FAILURE = "query failed on purpose";

  @WorkflowInterface
  public interface WaitingWorkflow {
    @WorkflowMethod
    String run(String canary);

    @SignalMethod
    void finish();

    @QueryMethod
    String state();

    @QueryMethod
    String failingQuery();
  }

  public static class WaitingWorkflowImpl implements WaitingWorkflow {
    private String canary = "";
    private boolean finished;

    @Override
    public String run(String canary) {
      this.canary = canary;
      Workflow.await(Duration.ofSeconds(90), () -> finished);
      return "done";
    }

    @Override
    public void finish() {
      finished = true;
    }

    @Override
    public String state() {
      return "running";
    }

    @Override
    public String failingQuery() {
      throw new IllegalStateException(QUERY_FAILURE + " " + canary);
    }
  }

  /** Runs `call`, which must throw; returns its chain (or says it returned). */
  static Object failure(Supplier<?> call) {
    try {
      Object v = call.get();
      return Map.of("returned", String.valueOf(v));
    } catch (Throwable e) {
      return Conn.chain(e);
    }
  }

  static Map<String, Object> run(Map<String, String> args) throws Exception {
    String address = Main.need(args, "address");
    String namespace = args.getOrDefault("namespace", "default");
    String token = Main.need(args, "token");
    String canary = "SECRET" + token;
    String taskQueue = "java-errors-" + token;
    String missing = "java-errors-missing-" + token;
    String running = "java-errors-running-" + token;
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("missingId", missing);
    out.put("runningId", running);
    out.put("canary", canary);

    try (Conn conn = new Conn(address, namespace, null)) {
      WorkerFactory factory = conn.factory();
      Worker worker = factory.newWorker(taskQueue);
      worker.registerWorkflowImplementationTypes(WaitingWorkflowImpl.class);
      factory.start();
      WorkflowClient client = conn.client;
      WorkflowServiceBlockingStub raw =
          conn.service.blockingStub().withDeadlineAfter(30, TimeUnit.SECONDS);

      // 1. A workflow that does not exist: describe, get-result, raw describe.
      WorkflowStub ghost = client.newUntypedWorkflowStub(missing, Optional.empty(), Optional.empty());
      out.put("describeMissing", failure(ghost::describe));
      out.put(
          "resultMissing",
          failure(
              () -> {
                try {
                  return ghost.getResult(20, TimeUnit.SECONDS, String.class);
                } catch (java.util.concurrent.TimeoutException e) {
                  throw new RuntimeException(e);
                }
              }));
      out.put(
          "rawDescribeMissing",
          failure(
              () ->
                  raw.describeWorkflowExecution(
                      DescribeWorkflowExecutionRequest.newBuilder()
                          .setNamespace(namespace)
                          .setExecution(WorkflowExecution.newBuilder().setWorkflowId(missing))
                          .build())));

      // 2. Starting an id whose run is open: through the SDK, then raw.
      WorkflowOptions options =
          WorkflowOptions.newBuilder()
              .setWorkflowId(running)
              .setTaskQueue(taskQueue)
              .setWorkflowExecutionTimeout(Duration.ofSeconds(120))
              .build();
      WaitingWorkflow first = client.newWorkflowStub(WaitingWorkflow.class, options);
      WorkflowExecution started = WorkflowClient.start(first::run, canary);
      out.put("runningRunId", started.getRunId());
      WaitingWorkflow second = client.newWorkflowStub(WaitingWorkflow.class, options);
      Map<String, Object> startTwice = new LinkedHashMap<>();
      try {
        WorkflowClient.start(second::run, canary);
        startTwice.put("returned", "started again");
      } catch (WorkflowExecutionAlreadyStarted e) {
        startTwice.put("chain", Conn.chain(e));
        startTwice.put("workflowId", e.getExecution().getWorkflowId());
        startTwice.put("runId", e.getExecution().getRunId());
        startTwice.put("workflowType", e.getWorkflowType().orElse(null));
      } catch (Throwable e) {
        startTwice.put("chain", Conn.chain(e));
      }
      out.put("startTwice", startTwice);

      String requestId = UUID.randomUUID().toString();
      Map<String, Object> rawStart = new LinkedHashMap<>();
      rawStart.put("requestId", requestId);
      try {
        StartWorkflowExecutionResponse r =
            raw.startWorkflowExecution(
                StartWorkflowExecutionRequest.newBuilder()
                    .setNamespace(namespace)
                    .setWorkflowId(running)
                    .setWorkflowType(WorkflowType.newBuilder().setName("WaitingWorkflow"))
                    .setTaskQueue(TaskQueue.newBuilder().setName(taskQueue))
                    .setInput(DefaultDataConverter.STANDARD_INSTANCE.toPayloads(canary).get())
                    .setRequestId(requestId)
                    .setIdentity("sealgate-e2e-java-raw")
                    .build());
        rawStart.put("returned", r.getRunId());
      } catch (StatusRuntimeException e) {
        rawStart.put("chain", Conn.chain(e));
        WorkflowExecutionAlreadyStartedFailure f =
            Conn.detail(e, WorkflowExecutionAlreadyStartedFailure.class);
        if (f != null) {
          rawStart.put("failureRunId", f.getRunId());
          rawStart.put("failureStartRequestId", f.getStartRequestId());
        }
      }
      out.put("rawStartTwice", rawStart);

      // 3. Queries: the handler throws; an unknown type. The workflow must be
      // running and have had its first task (a query before that waits).
      waitUntilQueryable(first);
      out.put("queryThrows", failure(first::failingQuery));
      WorkflowStub untyped = WorkflowStub.fromTyped(first);
      out.put("queryUnknown", failure(() -> untyped.query("noSuchQuery", String.class)));
      out.put("rawQueryThrows", rawQuery(raw, namespace, running, "failingQuery"));
      out.put("rawQueryUnknown", rawQuery(raw, namespace, running, "noSuchQuery"));
      // What the server itself answers (the worker is on `address`): a raw
      // query on a direct connection shows what reached the server.
      String observer = args.get("observer");
      if (observer != null) {
        try (Conn direct = new Conn(observer, namespace, null)) {
          out.put(
              "observerQueryThrows",
              rawQuery(
                  direct.service.blockingStub().withDeadlineAfter(30, TimeUnit.SECONDS),
                  namespace,
                  running,
                  "failingQuery"));
        }
      }

      first.finish();
      out.put("finished", untyped.getResult(30, TimeUnit.SECONDS, String.class));
    }
    return out;
  }

  private static void waitUntilQueryable(WaitingWorkflow wf) throws InterruptedException {
    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (System.nanoTime() < until) {
      try {
        if ("running".equals(wf.state())) {
          return;
        }
      } catch (RuntimeException e) {
        // not yet
      }
      Thread.sleep(100);
    }
  }

  private static Map<String, Object> rawQuery(
      WorkflowServiceBlockingStub raw, String namespace, String workflowId, String queryType) {
    Map<String, Object> out = new LinkedHashMap<>();
    try {
      raw.queryWorkflow(
          QueryWorkflowRequest.newBuilder()
              .setNamespace(namespace)
              .setExecution(WorkflowExecution.newBuilder().setWorkflowId(workflowId))
              .setQuery(WorkflowQuery.newBuilder().setQueryType(queryType))
              .build());
      out.put("returned", "an answer");
    } catch (StatusRuntimeException e) {
      out.put("chain", Conn.chain(e));
      QueryFailedFailure f =
          Conn.detail(e, QueryFailedFailure.class);
      if (f != null) {
        out.put("hasFailure", f.hasFailure());
        out.put("failureMessage", f.getFailure().getMessage());
        out.put("failureSource", f.getFailure().getSource());
        out.put("failureHasEncodedAttributes", f.getFailure().hasEncodedAttributes());
        out.put(
            "failureApplicationType",
            f.getFailure().getApplicationFailureInfo().getType());
      }
    }
    return out;
  }

  private Errors() {}
}
