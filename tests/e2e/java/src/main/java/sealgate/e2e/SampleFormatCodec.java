package sealgate.e2e;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import io.temporal.api.common.v1.Payload;
import io.temporal.payload.codec.PayloadCodec;
import io.temporal.payload.codec.PayloadCodecException;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * A payload codec writing and reading the format of the Java samples' encryption codec,
 * temporalio/samples-java core/src/main/java/io/temporal/samples/encryptedpayloads/CryptCodec.java
 * (unchanged since fd5bd1f1, May 2025; the samples pin temporal-sdk 1.37.0). That class is not
 * published to Maven Central; this is an independent implementation of the same format:
 *
 * <ul>
 *   <li>encode: metadata {@code encoding = binary/encrypted}, {@code encryption-cipher =
 *       AES/GCM/NoPadding}, {@code encryption-key-id = <key id>}; data = a random 12-byte IV ‖
 *       AES-GCM ciphertext ‖ 128-bit tag (what {@code Cipher.doFinal} returns, tag appended) over
 *       the whole marshaled inner Payload, no associated data, no compression;
 *   <li>the key is derived from the key id: its UTF-8 bytes are the AES key (the sample hard-codes
 *       the id {@code test-key-test-key-test-key-test!}, 32 bytes, so AES-256);
 *   <li>decode: a payload whose {@code encoding} is {@code binary/encrypted} must carry {@code
 *       encryption-key-id} (else it fails); {@code encryption-cipher} is neither required nor read;
 *       the key comes from the id; the first 12 bytes are the IV; the plaintext is parsed as a
 *       Payload and returned as it is (an inner {@code binary/snappy} would reach the converter).
 *       Any other payload passes through.
 * </ul>
 *
 * It also counts what it did, for the test's report.
 */
final class SampleFormatCodec implements PayloadCodec {
  static final String SAMPLE_KEY_ID = "test-key-test-key-test-key-test!";
  static final String ENCODING = "encoding";
  static final String ENCRYPTED = "binary/encrypted";
  static final String CIPHER_KEY = "encryption-cipher";
  static final String CIPHER = "AES/GCM/NoPadding";
  static final String KEY_ID = "encryption-key-id";
  static final int IV_BYTES = 12;
  static final int TAG_BITS = 128;

  private final String keyId;
  private final SecureRandom random = new SecureRandom();
  final AtomicInteger encoded = new AtomicInteger();
  final AtomicInteger decoded = new AtomicInteger();
  final AtomicInteger passedThrough = new AtomicInteger();
  /** Inner encodings found after decrypting, with counts. */
  final Map<String, Integer> innerEncodings = new ConcurrentHashMap<>();
  /** Metadata keys seen on encrypted payloads, with counts. */
  final Map<String, Integer> encryptedMetadataKeys = new ConcurrentHashMap<>();
  final List<String> errors = java.util.Collections.synchronizedList(new ArrayList<>());

  SampleFormatCodec(String keyId) {
    this.keyId = keyId;
  }

  private static SecretKeySpec keyFor(String id) {
    return new SecretKeySpec(id.getBytes(StandardCharsets.UTF_8), "AES");
  }

  @Override
  public List<Payload> encode(List<Payload> payloads) {
    List<Payload> out = new ArrayList<>(payloads.size());
    for (Payload p : payloads) {
      out.add(encodeOne(p));
    }
    return out;
  }

  @Override
  public List<Payload> decode(List<Payload> payloads) {
    List<Payload> out = new ArrayList<>(payloads.size());
    for (Payload p : payloads) {
      out.add(decodeOne(p));
    }
    return out;
  }

  private Payload encodeOne(Payload inner) {
    byte[] iv = new byte[IV_BYTES];
    random.nextBytes(iv);
    byte[] sealed;
    try {
      Cipher c = Cipher.getInstance(CIPHER);
      c.init(Cipher.ENCRYPT_MODE, keyFor(keyId), new GCMParameterSpec(TAG_BITS, iv));
      sealed = c.doFinal(inner.toByteArray()); // ciphertext ‖ tag
    } catch (GeneralSecurityException e) {
      errors.add("encode: " + e);
      throw new PayloadCodecException(e);
    }
    byte[] data = Arrays.copyOf(iv, IV_BYTES + sealed.length);
    System.arraycopy(sealed, 0, data, IV_BYTES, sealed.length);
    encoded.incrementAndGet();
    return Payload.newBuilder()
        .putMetadata(ENCODING, ByteString.copyFromUtf8(ENCRYPTED))
        .putMetadata(CIPHER_KEY, ByteString.copyFromUtf8(CIPHER))
        .putMetadata(KEY_ID, ByteString.copyFromUtf8(keyId))
        .setData(ByteString.copyFrom(data))
        .build();
  }

  private Payload decodeOne(Payload p) {
    ByteString encoding = p.getMetadataOrDefault(ENCODING, null);
    if (encoding == null || !encoding.toStringUtf8().equals(ENCRYPTED)) {
      passedThrough.incrementAndGet();
      return p;
    }
    for (String k : p.getMetadataMap().keySet()) {
      encryptedMetadataKeys.merge(k, 1, Integer::sum);
    }
    ByteString id = p.getMetadataOrDefault(KEY_ID, null);
    if (id == null) {
      errors.add("decode: no " + KEY_ID);
      throw new PayloadCodecException("binary/encrypted payload without " + KEY_ID);
    }
    byte[] data = p.getData().toByteArray();
    try {
      Cipher c = Cipher.getInstance(CIPHER);
      c.init(
          Cipher.DECRYPT_MODE,
          keyFor(id.toStringUtf8()),
          new GCMParameterSpec(TAG_BITS, data, 0, IV_BYTES));
      byte[] plain = c.doFinal(data, IV_BYTES, data.length - IV_BYTES);
      Payload inner = Payload.parseFrom(plain);
      ByteString innerEncoding = inner.getMetadataOrDefault(ENCODING, ByteString.EMPTY);
      innerEncodings.merge(innerEncoding.toStringUtf8(), 1, Integer::sum);
      decoded.incrementAndGet();
      return inner;
    } catch (GeneralSecurityException | InvalidProtocolBufferException | RuntimeException e) {
      errors.add("decode: " + e);
      throw new PayloadCodecException(e);
    }
  }

  Map<String, Object> report() {
    Map<String, Object> m = new TreeMap<>();
    m.put("encoded", encoded.get());
    m.put("decoded", decoded.get());
    m.put("passedThrough", passedThrough.get());
    m.put("innerEncodings", new TreeMap<>(innerEncodings));
    m.put("encryptedMetadataKeys", new TreeMap<>(encryptedMetadataKeys));
    synchronized (errors) {
      m.put("errors", new ArrayList<>(errors.subList(0, Math.min(errors.size(), 10))));
    }
    return m;
  }
}
