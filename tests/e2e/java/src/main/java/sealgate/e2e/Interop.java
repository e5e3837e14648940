package sealgate.e2e;

import io.temporal.activity.ActivityInterface;
import io.temporal.activity.ActivityOptions;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowOptions;
import io.temporal.client.WorkflowStub;
import io.temporal.common.RetryOptions;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.workflow.Workflow;
import io.temporal.workflow.WorkflowInterface;
import io.temporal.workflow.WorkflowMethod;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Interop with the Java samples' encryption format, both ways, against one sealgate configured
 * with the sample's key:
 *
 * <ul>
 *   <li>a: a client THROUGH sealgate (no codec; sealgate encrypts) starts a workflow that a worker
 *       connected DIRECTLY to the server with the sample-format codec runs; the client reads the
 *       result (written by the sample codec) through sealgate.
 *   <li>b: a client DIRECTLY on the server with the sample-format codec starts a workflow that a
 *       worker THROUGH sealgate (no codec) runs; the sample-format client reads its result
 *       (written by sealgate) directly.
 * </ul>
 */
final class Interop {
  static final Map<String, String> SEEN = new ConcurrentHashMap<>();

  @ActivityInterface
  public interface EchoActivity {
    String echo(String value);
  }

  public static class EchoActivityImpl implements EchoActivity {
    private final String side;

    public EchoActivityImpl(String side) {
      this.side = side;
    }

    @Override
    public String echo(String value) {
      SEEN.put(side + ".activity", value);
      return "echoed " + value;
    }
  }

  @WorkflowInterface
  public interface InteropWorkflow {
    @WorkflowMethod
    String run(String input);
  }

  public static class InteropWorkflowImpl implements InteropWorkflow {
    @Override
    public String run(String input) {
      EchoActivity act =
          Workflow.newActivityStub(
              EchoActivity.class,
              ActivityOptions.newBuilder()
                  .setStartToCloseTimeout(Duration.ofSeconds(20))
                  .setRetryOptions(RetryOptions.newBuilder().setMaximumAttempts(1).build())
                  .build());
      String echoed = act.echo(input + "-act");
      return "interop saw " + input + " / " + echoed;
    }
  }

  static Map<String, Object> run(Map<String, String> args) throws Exception {
    String direct = Main.need(args, "direct");
    String gate = Main.need(args, "sealgate");
    String namespace = args.getOrDefault("namespace", "default");
    String token = Main.need(args, "token");
    String only = args.getOrDefault("only", "ab");
    long wait = Long.parseLong(args.getOrDefault("wait", "60"));
    String keyId = args.getOrDefault("key-id", SampleFormatCodec.SAMPLE_KEY_ID);
    Map<String, Object> out = new LinkedHashMap<>();

    if (only.contains("a")) {
      String input = args.getOrDefault("input-a", "SECRET" + token + "-a-input");
      String taskQueue = "java-interop-a-" + token;
      String id = "java-interop-a-" + token;
      Map<String, Object> a = new LinkedHashMap<>();
      a.put("workflowId", id);
      a.put("inputLength", input.length());
      SampleFormatCodec codec = new SampleFormatCodec(keyId);
      try (Conn sampleSide = new Conn(direct, namespace, codec);
          Conn gateSide = new Conn(gate, namespace, null)) {
        WorkerFactory f = sampleSide.factory();
        Worker w = f.newWorker(taskQueue);
        w.registerWorkflowImplementationTypes(InteropWorkflowImpl.class);
        w.registerActivitiesImplementations(new EchoActivityImpl("a"));
        f.start();
        InteropWorkflow wf =
            gateSide.client.newWorkflowStub(
                InteropWorkflow.class,
                WorkflowOptions.newBuilder()
                    .setWorkflowId(id)
                    .setTaskQueue(taskQueue)
                    .setWorkflowExecutionTimeout(Duration.ofSeconds(wait + 30))
                    .build());
        WorkflowClient.start(wf::run, input);
        WorkflowStub stub = WorkflowStub.fromTyped(wf);
        try {
          a.put("resultThroughSealgate", stub.getResult(wait, TimeUnit.SECONDS, String.class));
        } catch (Exception e) {
          a.put("resultError", Conn.chain(e));
          try {
            stub.terminate("interop test gave up");
          } catch (RuntimeException ignored) {
            // best effort
          }
        }
        a.put("workerSawActivityInput", SEEN.get("a.activity"));
        a.put("sampleCodec", codec.report());
      }
      out.put("a", a);
    }

    if (only.contains("b")) {
      String input = args.getOrDefault("input-b", "SECRET" + token + "-b-input");
      String taskQueue = "java-interop-b-" + token;
      String id = "java-interop-b-" + token;
      Map<String, Object> b = new LinkedHashMap<>();
      b.put("workflowId", id);
      SampleFormatCodec codec = new SampleFormatCodec(keyId);
      try (Conn sampleSide = new Conn(direct, namespace, codec);
          Conn gateSide = new Conn(gate, namespace, null)) {
        WorkerFactory f = gateSide.factory();
        Worker w = f.newWorker(taskQueue);
        w.registerWorkflowImplementationTypes(InteropWorkflowImpl.class);
        w.registerActivitiesImplementations(new EchoActivityImpl("b"));
        f.start();
        InteropWorkflow wf =
            sampleSide.client.newWorkflowStub(
                InteropWorkflow.class,
                WorkflowOptions.newBuilder()
                    .setWorkflowId(id)
                    .setTaskQueue(taskQueue)
                    .setWorkflowExecutionTimeout(Duration.ofSeconds(wait + 30))
                    .build());
        WorkflowClient.start(wf::run, input);
        WorkflowStub stub = WorkflowStub.fromTyped(wf);
        try {
          b.put("resultReadBySampleCodec", stub.getResult(wait, TimeUnit.SECONDS, String.class));
        } catch (Exception e) {
          b.put("resultError", Conn.chain(e));
          try {
            stub.terminate("interop test gave up");
          } catch (RuntimeException ignored) {
            // best effort
          }
        }
        b.put("workerSawActivityInput", SEEN.get("b.activity"));
        b.put("sampleCodec", codec.report());
      }
      out.put("b", b);
    }
    out.put("seen", new TreeMap<>(SEEN));
    return out;
  }

  private Interop() {}
}
