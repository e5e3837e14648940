package sealgate.e2e;

import io.nexusrpc.Operation;
import io.nexusrpc.Service;
import io.nexusrpc.handler.OperationHandler;
import io.nexusrpc.handler.OperationImpl;
import io.nexusrpc.handler.ServiceImpl;
import io.temporal.activity.ActivityInterface;
import io.temporal.activity.ActivityOptions;
import io.temporal.activity.LocalActivityOptions;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowOptions;
import io.temporal.client.WorkflowStub;
import io.temporal.common.RetryOptions;
import io.temporal.common.SearchAttributeKey;
import io.temporal.common.SearchAttributes;
import io.temporal.failure.ActivityFailure;
import io.temporal.failure.ApplicationFailure;
import io.temporal.worker.Worker;
import io.temporal.worker.WorkerFactory;
import io.temporal.workflow.ChildWorkflowOptions;
import io.temporal.workflow.NexusOperationOptions;
import io.temporal.workflow.NexusServiceOptions;
import io.temporal.workflow.QueryMethod;
import io.temporal.workflow.SignalMethod;
import io.temporal.workflow.UpdateMethod;
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
 * The full scenario with a worker and a client on one address: activity, local activity, child
 * workflow, a failing activity with details, a Nexus operation, signal, query, update, memo and a
 * keyword search attribute. Every payload carries the run's secret.
 */
final class Scenario {
  static final String SEARCH_ATTRIBUTE = "CustomKeyword";
  static final String FAILURE_MESSAGE = "activity failed on purpose";
  static final String FAILURE_TYPE = "ScenarioFailure";

  /** What worker code saw, by where it saw it (activities, handlers). */
  static final Map<String, String> SEEN = new ConcurrentHashMap<>();

  @ActivityInterface
  public interface Activities {
    String chargeCard(String card);

    void failWithDetails(String secret);
  }

  public static class ActivitiesImpl implements Activities {
    @Override
    public String chargeCard(String card) {
      SEEN.put("activity", card);
      return "charged " + card;
    }

    @Override
    public void failWithDetails(String secret) {
      SEEN.put("failingActivity", secret);
      throw ApplicationFailure.newNonRetryableFailure(
          FAILURE_MESSAGE, FAILURE_TYPE, secret + "-failure-detail");
    }
  }

  @ActivityInterface
  public interface LocalActivities {
    String localEcho(String value);
  }

  public static class LocalActivitiesImpl implements LocalActivities {
    @Override
    public String localEcho(String value) {
      SEEN.put("localActivity", value);
      return "local saw " + value;
    }
  }

  @WorkflowInterface
  public interface ChildWorkflow {
    @WorkflowMethod
    String run(String arg);
  }

  public static class ChildWorkflowImpl implements ChildWorkflow {
    @Override
    public String run(String arg) {
      return "child got " + arg;
    }
  }

  @Service
  public interface SecretService {
    @Operation
    String echo(String value);
  }

  @ServiceImpl(service = SecretService.class)
  public static class SecretServiceImpl {
    @OperationImpl
    public OperationHandler<String, String> echo() {
      return OperationHandler.sync(
          (ctx, details, value) -> {
            SEEN.put("nexusHandler", value);
            return "nexus saw " + value;
          });
    }
  }

  @WorkflowInterface
  public interface ScenarioWorkflow {
    @WorkflowMethod
    Map<String, String> run(String input, String nexusEndpoint);

    @SignalMethod
    void addNote(String note);

    @QueryMethod
    String stageNow();

    @UpdateMethod
    String setValue(String value);
  }

  public static class ScenarioWorkflowImpl implements ScenarioWorkflow {
    private String signal;
    private String update;
    private String stage = "started";

    @Override
    public Map<String, String> run(String input, String nexusEndpoint) {
      Map<String, String> out = new TreeMap<>();
      Activities activities =
          Workflow.newActivityStub(
              Activities.class,
              ActivityOptions.newBuilder()
                  .setStartToCloseTimeout(Duration.ofSeconds(30))
                  .setRetryOptions(RetryOptions.newBuilder().setMaximumAttempts(1).build())
                  .build());
      out.put("charged", activities.chargeCard(input + "-card"));

      LocalActivities local =
          Workflow.newLocalActivityStub(
              LocalActivities.class,
              LocalActivityOptions.newBuilder().setStartToCloseTimeout(Duration.ofSeconds(30)).build());
      out.put("local", local.localEcho(input + "-local"));

      ChildWorkflow child =
          Workflow.newChildWorkflowStub(
              ChildWorkflow.class,
              ChildWorkflowOptions.newBuilder()
                  .setWorkflowId(Workflow.getInfo().getWorkflowId() + "-child")
                  .build());
      out.put("child", child.run(input + "-child-input"));

      try {
        activities.failWithDetails(input);
        out.put("failureMessage", "(the activity did not fail)");
      } catch (ActivityFailure e) {
        if (e.getCause() instanceof ApplicationFailure) {
          ApplicationFailure af = (ApplicationFailure) e.getCause();
          out.put("failureMessage", af.getOriginalMessage());
          out.put("failureType", af.getType());
          out.put("failureDetail", af.getDetails().get(String.class));
        } else {
          out.put("failureMessage", "(cause " + e.getCause() + ")");
        }
      }

      if (nexusEndpoint != null && !nexusEndpoint.isEmpty()) {
        SecretService nexus =
            Workflow.newNexusServiceStub(
                SecretService.class,
                NexusServiceOptions.newBuilder()
                    .setEndpoint(nexusEndpoint)
                    .setOperationOptions(
                        NexusOperationOptions.newBuilder()
                            .setScheduleToCloseTimeout(Duration.ofSeconds(30))
                            .build())
                    .build());
        out.put("nexus", nexus.echo(input + "-nexus"));
      }

      stage = "waiting with " + input + "-query-state";
      boolean done = Workflow.await(Duration.ofSeconds(60), () -> signal != null && update != null);
      out.put("signal", signal);
      out.put("update", update);
      out.put("memo", (String) Workflow.getMemo("note", String.class));
      out.put(
          "searchAttribute",
          Workflow.getTypedSearchAttributes().get(SearchAttributeKey.forKeyword(SEARCH_ATTRIBUTE)));
      out.put("waited", done ? "signal and update" : "timed out");
      return out;
    }

    @Override
    public void addNote(String note) {
      signal = note;
    }

    @Override
    public String stageNow() {
      return stage;
    }

    @Override
    public String setValue(String value) {
      update = value;
      return "accepted " + value;
    }
  }

  static Map<String, Object> run(Map<String, String> args) throws Exception {
    String address = Main.need(args, "address");
    String namespace = args.getOrDefault("namespace", "default");
    String taskQueue = Main.need(args, "task-queue");
    String token = Main.need(args, "token");
    String endpoint = args.getOrDefault("nexus-endpoint", "");
    String secret = "SECRET" + token;
    String saValue = "visible-" + token;
    String workflowId = "java-scenario-" + token;
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("workflowId", workflowId);
    out.put("childWorkflowId", workflowId + "-child");
    out.put("secret", secret);
    out.put("searchAttribute", saValue);

    try (Conn conn = new Conn(address, namespace, null)) {
      WorkerFactory factory = conn.factory();
      Worker worker = factory.newWorker(taskQueue);
      worker.registerWorkflowImplementationTypes(ScenarioWorkflowImpl.class, ChildWorkflowImpl.class);
      worker.registerActivitiesImplementations(new ActivitiesImpl(), new LocalActivitiesImpl());
      worker.registerNexusServiceImplementation(new SecretServiceImpl());
      factory.start();

      ScenarioWorkflow wf =
          conn.client.newWorkflowStub(
              ScenarioWorkflow.class,
              WorkflowOptions.newBuilder()
                  .setWorkflowId(workflowId)
                  .setTaskQueue(taskQueue)
                  .setWorkflowExecutionTimeout(Duration.ofSeconds(120))
                  .setMemo(Map.of("note", secret + "-memo"))
                  .setTypedSearchAttributes(
                      SearchAttributes.newBuilder()
                          .set(SearchAttributeKey.forKeyword(SEARCH_ATTRIBUTE), saValue)
                          .build())
                  .build());
      String input = secret + "-input";
      WorkflowClient.start(wf::run, input, endpoint);
      out.put("runId", WorkflowStub.fromTyped(wf).getExecution().getRunId());

      // Wait for the waiting stage, through queries (bounded: 60 s).
      String stage = "";
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (System.nanoTime() < until) {
        stage = wf.stageNow();
        if (stage.startsWith("waiting")) {
          break;
        }
        Thread.sleep(100);
      }
      Map<String, Object> client = new LinkedHashMap<>();
      client.put("query", stage);
      client.put("updateResult", wf.setValue(secret + "-update"));
      wf.addNote(secret + "-signal");
      @SuppressWarnings("unchecked")
      Map<String, String> result =
          WorkflowStub.fromTyped(wf).getResult(60, TimeUnit.SECONDS, Map.class);
      client.put("result", result);
      out.put("client", client);
      out.put("worker", new TreeMap<>(SEEN));
    }
    return out;
  }

  private Scenario() {}
}
