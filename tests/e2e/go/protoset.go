package main

import (
	"os"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// The services' files, so they are registered.
	_ "go.temporal.io/api/operatorservice/v1"
	_ "go.temporal.io/api/workflowservice/v1"
	_ "google.golang.org/genproto/googleapis/rpc/status"
	_ "google.golang.org/grpc/health/grpc_health_v1"
)

// extraFiles are included besides temporal/api/: the health service
// (sealgate serves it by default) and google.rpc.Status, the message of
// grpc-status-details-bin, which sealgate walks to decode failures in
// error details such as QueryFailedFailure. No temporal/api file imports it.
var extraFiles = map[string]bool{
	"grpc/health/v1/health.proto": true,
	"google/rpc/status.proto":     true,
}

// writeProtoset writes the Temporal API this binary was built with
// (go.temporal.io/api, as the Go SDK speaks it) as a binary
// FileDescriptorSet with every import, dependencies first: what sealgate's
// `[schema] descriptor_set` loads.
// Without rpcStatus, google/rpc/status.proto is left out, as it is from a
// `buf build` of the temporalio/api repository.
func writeProtoset(path string, rpcStatus bool) int {
	var roots []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if fd.Path() == "google/rpc/status.proto" && !rpcStatus {
			return true
		}
		if strings.HasPrefix(fd.Path(), "temporal/api/") || extraFiles[fd.Path()] {
			roots = append(roots, fd)
		}
		return true
	})
	sort.Slice(roots, func(i, j int) bool { return roots[i].Path() < roots[j].Path() })
	set := &descriptorpb.FileDescriptorSet{}
	done := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if done[fd.Path()] {
			return
		}
		done[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range roots {
		add(fd)
	}
	b, err := proto.Marshal(set)
	if err != nil {
		fail("protoset: %v", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		fail("protoset: %v", err)
	}
	return len(set.File)
}
