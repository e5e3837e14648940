package sealgate.e2e;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.util.HashMap;
import java.util.Map;

/**
 * The Java SDK (temporal-sdk on grpc-java/Netty) for sealgate's end-to-end tests
 * (tests/e2e/test_java_sdk.py). One program, one subcommand per test:
 *
 * <pre>
 *   scenario --address A --namespace N --task-queue TQ --token T [--nexus-endpoint E]
 *   errors   --address A --namespace N --token T [--observer DIRECT]
 *   interop  --direct A --sealgate S --namespace N --token T [--only a|b] [--input-a X] [--wait S]
 * </pre>
 *
 * Each prints one JSON object (its last line on stdout) with what the worker and the client saw;
 * logs go to stderr. Every wait is bounded, and a watchdog ends the process after --deadline
 * seconds (default 150) with exit code 3.
 */
public final class Main {
  static final ObjectMapper JSON =
      new ObjectMapper().configure(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS, true);

  public static void main(String[] argv) throws Exception {
    // slf4j-simple reads these when the first logger is made: warnings only, on stderr.
    System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
    if (argv.length == 0) {
      usage("no subcommand");
    }
    Map<String, String> args = parse(argv);
    long deadline = Long.parseLong(args.getOrDefault("deadline", "150"));
    startWatchdog(deadline);
    Object out;
    switch (argv[0]) {
      case "scenario":
        out = Scenario.run(args);
        break;
      case "errors":
        out = Errors.run(args);
        break;
      case "interop":
        out = Interop.run(args);
        break;
      default:
        usage("unknown subcommand " + argv[0]);
        return;
    }
    System.out.flush();
    System.out.println(JSON.writeValueAsString(out));
    System.out.flush();
    // Worker threads (long polls) must not keep the JVM alive.
    System.exit(0);
  }

  static Map<String, String> parse(String[] argv) {
    Map<String, String> args = new HashMap<>();
    for (int i = 1; i < argv.length; i++) {
      String a = argv[i];
      if (!a.startsWith("--") || i + 1 >= argv.length) {
        usage("bad argument " + a);
      }
      args.put(a.substring(2), argv[++i]);
    }
    return args;
  }

  static String need(Map<String, String> args, String name) {
    String v = args.get(name);
    if (v == null || v.isEmpty()) {
      usage("--" + name + " is required");
    }
    return v;
  }

  private static void startWatchdog(long seconds) {
    Thread t =
        new Thread(
            () -> {
              try {
                Thread.sleep(seconds * 1000);
              } catch (InterruptedException e) {
                return;
              }
              System.err.println("sealgate-e2e-java: still running after " + seconds + "s, giving up");
              Runtime.getRuntime().halt(3);
            },
            "watchdog");
    t.setDaemon(true);
    t.start();
  }

  private static void usage(String why) {
    System.err.println("sealgate-e2e-java: " + why);
    System.err.println(
        "usage: java -jar sealgate-e2e-java-all.jar scenario|errors|interop --address HOST:PORT ...");
    System.exit(64);
  }

  private Main() {}
}
