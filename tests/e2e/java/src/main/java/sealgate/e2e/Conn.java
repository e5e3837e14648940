package sealgate.e2e;

import com.google.protobuf.Any;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowClientOptions;
import io.temporal.common.converter.CodecDataConverter;
import io.temporal.common.converter.DataConverter;
import io.temporal.common.converter.DefaultDataConverter;
import io.temporal.payload.codec.PayloadCodec;
import io.temporal.serviceclient.WorkflowServiceStubs;
import io.temporal.serviceclient.WorkflowServiceStubsOptions;
import io.temporal.worker.WorkerFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** A plaintext grpc-java connection to one address, a client on it, and error reporting. */
final class Conn implements AutoCloseable {
  static final Metadata.Key<byte[]> DETAILS_KEY =
      Metadata.Key.of("grpc-status-details-bin", Metadata.BINARY_BYTE_MARSHALLER);

  final String address;
  final WorkflowServiceStubs service;
  final WorkflowClient client;
  private final List<WorkerFactory> factories = new ArrayList<>();

  /** A connection whose client uses the default data converter, or `codec` over it. */
  Conn(String address, String namespace, PayloadCodec codec) {
    this.address = address;
    this.service =
        WorkflowServiceStubs.newServiceStubs(
            WorkflowServiceStubsOptions.newBuilder()
                .setTarget(address)
                .setRpcTimeout(Duration.ofSeconds(20))
                .build());
    DataConverter converter = DefaultDataConverter.newDefaultInstance();
    if (codec != null) {
      converter = new CodecDataConverter(converter, List.of(codec));
    }
    this.client =
        WorkflowClient.newInstance(
            service,
            WorkflowClientOptions.newBuilder()
                .setNamespace(namespace)
                .setIdentity("sealgate-e2e-java@" + address)
                .setDataConverter(converter)
                .build());
  }

  /** A worker factory on this connection, shut down by close(). */
  WorkerFactory factory() {
    WorkerFactory f = WorkerFactory.newInstance(client);
    factories.add(f);
    return f;
  }

  @Override
  public void close() {
    for (WorkerFactory f : factories) {
      f.shutdownNow();
    }
    for (WorkerFactory f : factories) {
      f.awaitTermination(10, TimeUnit.SECONDS);
    }
    service.shutdownNow();
    service.awaitTermination(5, TimeUnit.SECONDS);
  }

  /** An exception and its causes: class, message; for a gRPC status also code and details. */
  static List<Map<String, Object>> chain(Throwable e) {
    List<Map<String, Object>> out = new ArrayList<>();
    for (Throwable t = e; t != null && out.size() < 10; t = t.getCause()) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("class", t.getClass().getName());
      m.put("message", t.getMessage());
      if (t instanceof StatusRuntimeException) {
        m.put("grpc", status((StatusRuntimeException) t));
      }
      out.add(m);
      if (t.getCause() == t) {
        break;
      }
    }
    return out;
  }

  /**
   * A status as grpc-java saw it: code, description, the raw grpc-status-details-bin (base64) and
   * its google.rpc.Status details (type URL and base64 value of each Any).
   */
  static Map<String, Object> status(StatusRuntimeException e) {
    Map<String, Object> m = new LinkedHashMap<>();
    Status s = e.getStatus();
    m.put("code", s.getCode().name());
    m.put("description", s.getDescription());
    Metadata trailers = e.getTrailers();
    byte[] raw = trailers == null ? null : trailers.get(DETAILS_KEY);
    m.put("detailsBin", raw == null ? null : Base64.getEncoder().encodeToString(raw));
    com.google.rpc.Status proto = StatusProto.fromThrowable(e);
    List<Map<String, String>> details = new ArrayList<>();
    if (proto != null) {
      m.put("statusMessage", proto.getMessage());
      for (Any any : proto.getDetailsList()) {
        Map<String, String> d = new LinkedHashMap<>();
        d.put("typeUrl", any.getTypeUrl());
        d.put("value", Base64.getEncoder().encodeToString(any.getValue().toByteArray()));
        details.add(d);
      }
    }
    m.put("details", details);
    return m;
  }

  /** The first detail of type `cls` in the status's grpc-status-details-bin, or null. */
  static <T extends com.google.protobuf.Message> T detail(StatusRuntimeException e, Class<T> cls) {
    com.google.rpc.Status proto = StatusProto.fromThrowable(e);
    if (proto == null) {
      return null;
    }
    for (Any any : proto.getDetailsList()) {
      if (any.is(cls)) {
        try {
          return any.unpack(cls);
        } catch (com.google.protobuf.InvalidProtocolBufferException ex) {
          return null;
        }
      }
    }
    return null;
  }

  static StatusRuntimeException findStatus(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof StatusRuntimeException) {
        return (StatusRuntimeException) t;
      }
      if (t.getCause() == t) {
        break;
      }
    }
    return null;
  }
}
