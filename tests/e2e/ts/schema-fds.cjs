// The Temporal API as the TypeScript SDK ships it (@temporalio/proto's
// protobufjs JSON module), as a google.protobuf.FileDescriptorSet.
//
// Usage: node schema-fds.cjs OUT.fds
// Writes the set to OUT.fds and a JSON report to stdout. scripts/schema-sources
// runs this, then gives each file its dependencies, keeps the temporal.api.*
// packages and what they use, orders the files and checks the result.
//
// protobufjs's own conversion (Root#toDescriptor from protobufjs/ext/descriptor,
// the protobufjs that @temporalio/proto itself uses) is fixed up here where it
// needs the resolved reflection tree:
//  - type names: protobufjs writes them relative to the referring scope
//    ("v1.Payload", "Payload"); they become fully qualified (".temporal.api...").
//  - map entries: protobufjs names the entry type after the camelCase field
//    name without "Entry" ("IndexedFields"); protoc names it
//    "IndexedFieldsEntry", and descriptor pools reject any other name.
//  - extendees: qualified like type names.
//  - extensions: protobufjs adds a copy of each extension to the fields of the
//    message it extends (google.protobuf.MethodOptions gets a field
//    ".temporal.api.protometa.v1.requestHeader"); the copies are dropped.
//  - `packed = false`, which protobufjs puts on fields that cannot be packed
//    (every non-repeated field of a proto3 file; repeated messages), is
//    dropped there: it means nothing on them.
//  - oneof names: the JSON module has them in lowerCamelCase only; they are
//    turned back into snake_case ("failureInfo" -> "failure_info"). Oneof
//    membership and order come through intact.
//  - proto2 types (google/protobuf/descriptor.proto's, which the JSON module
//    marks "edition": "proto2") are converted as proto2, not as the proto3 that
//    Root#toDescriptor applies to all, so their `required` labels survive; the
//    caller puts them in a proto2 file of their own.
"use strict";

const fs = require("fs");
const path = require("path");

const out = process.argv[2];
if (!out) {
  process.stderr.write("usage: node schema-fds.cjs OUT.fds\n");
  process.exit(64);
}

const protoDir = path.dirname(require.resolve("@temporalio/proto/package.json"));
const fromProto = (m) => require(require.resolve(m, { paths: [protoDir] }));
const protobuf = fromProto("protobufjs");
const descriptor = fromProto("protobufjs/ext/descriptor");
// The unpatched root: protos/root.js re-nests it for the generated TS types.
const root = fromProto("@temporalio/proto/protos/json-module.js");
root.resolveAll();

const fixes = {
  type_names: 0,
  map_entries: 0,
  extendees: 0,
  packed_dropped: 0,
  extension_copies_dropped: 0,
  oneof_names: 0,
  proto2_types: 0,
};
const editions = {};

// protoc's map entry name: the field name in UpperCamelCase + "Entry".
function entryName(protoName) {
  const camel = protoName.replace(/_+([a-zA-Z0-9])/g, (_, c) => c.toUpperCase()).replace(/_/g, "");
  return camel.charAt(0).toUpperCase() + camel.slice(1) + "Entry";
}

// The JSON module keeps oneof names only in lowerCamelCase ("failureInfo");
// proto oneof names are snake_case ("failure_info").
function snakeCase(name) {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
}

function qualify(fd, want, kind) {
  if (fd[kind] !== want) {
    fd[kind] = want;
    fixes[kind === "extendee" ? "extendees" : "type_names"]++;
  }
}

function fixField(fd, field) {
  if (!field) throw new Error(`no reflection object for field ${fd.name} = ${fd.number}`);
  if (field.resolvedType && !field.map) qualify(fd, field.resolvedType.fullName, "typeName");
  if (fd.extendee) {
    const target = field.extensionField ? field.extensionField.parent : field.parent.lookup(field.extend);
    if (!target) throw new Error(`cannot resolve extendee ${field.extend} of ${field.fullName}`);
    qualify(fd, target.fullName, "extendee");
  }
  // 3 repeated; 9 string, 10 group, 11 message, 12 bytes: never packed.
  if ((fd.label !== 3 || [9, 10, 11, 12].includes(fd.type)) && fd.options && fd.options.packed === false) {
    delete fd.options.packed;
    if (Object.keys(fd.options.toJSON()).length === 0) fd.options = null;
    fixes.packed_dropped++;
  }
}

function fixMessage(md, type) {
  if (!(type instanceof protobuf.Type)) throw new Error(`no reflection type for message ${md.name}`);
  const entries = new Map();
  for (const nd of md.nestedType) if (nd.options && nd.options.mapEntry) entries.set(nd.name, nd);
  const kept = [];
  for (const fd of md.field) {
    // Fields of the message, then extensions declared inside it.
    const field = fd.extendee
      ? type.nestedArray.find((f) => f instanceof protobuf.Field && f.id === fd.number && (f.protoName || f.name) === fd.name)
      : type.fieldsById[fd.number];
    if (field && field.declaringField) {
      // protobufjs's copy of an extension declared elsewhere, not a field.
      fixes.extension_copies_dropped++;
      continue;
    }
    kept.push(fd);
    fixField(fd, field);
    if (field.map) {
      const entry = entries.get(fd.typeName);
      if (!entry) throw new Error(`map field ${field.fullName}: no entry type ${fd.typeName}`);
      entries.delete(fd.typeName);
      entry.name = entryName(fd.name);
      qualify(fd, `${type.fullName}.${entry.name}`, "typeName");
      const value = entry.field.find((f) => f.number === 2);
      if (field.resolvedType) qualify(value, field.resolvedType.fullName, "typeName");
      fixes.map_entries++;
    }
  }
  md.field = kept;
  for (const od of md.oneofDecl) {
    const name = snakeCase(od.name);
    if (name !== od.name) {
      od.name = name;
      fixes.oneof_names++;
    }
  }
  for (const nd of md.nestedType) {
    if (nd.options && nd.options.mapEntry) continue;
    fixMessage(nd, type.get(nd.name));
  }
}

const set = root.toDescriptor("proto3");
for (const file of set.file) {
  const ns = file.package ? root.lookup(file.package) : root;
  const prefix = file.package ? `${file.package}.` : "";
  file.messageType = file.messageType.map((md) => {
    const type = ns.get(md.name);
    const edition = (editions[prefix + md.name] = type._edition || "proto3");
    // Root#toDescriptor converts every type as the one syntax it is given.
    if (edition !== "proto3") {
      md = type.toDescriptor(edition);
      fixes.proto2_types++;
    }
    fixMessage(md, type);
    return md;
  });
  for (const ed of file.enumType) editions[prefix + ed.name] = ns.get(ed.name)._edition || "proto3";
  for (const sd of file.service) editions[prefix + sd.name] = ns.get(sd.name)._edition || "proto3";
  for (const xd of file.extension) {
    const field = ns.nestedArray.find((f) => f instanceof protobuf.Field && f.id === xd.number && (f.protoName || f.name) === xd.name);
    fixField(xd, field);
    editions[prefix + xd.name] = field._edition || "proto3";
  }
}

fs.writeFileSync(out, descriptor.FileDescriptorSet.encode(set).finish());
const version = (p) => JSON.parse(fs.readFileSync(require.resolve(`${p}/package.json`, { paths: [protoDir] }))).version;
process.stdout.write(
  JSON.stringify({
    source: `@temporalio/proto ${version("@temporalio/proto")} (protobufjs ${version("protobufjs")})`,
    fixes,
    editions,
  }) + "\n",
);
