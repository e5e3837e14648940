package main

import (
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var payloadName = (&commonpb.Payload{}).ProtoReflect().Descriptor().FullName()

// walkPayloads calls fn for every temporal.api.common.v1.Payload inside m,
// with a dotted path of field names (map keys and list indexes in brackets).
func walkPayloads(m proto.Message, path string, fn func(string, *commonpb.Payload)) {
	walkMessage(m.ProtoReflect(), path, fn)
}

func walkMessage(m protoreflect.Message, path string, fn func(string, *commonpb.Payload)) {
	if m.Descriptor().FullName() == payloadName {
		if p, ok := m.Interface().(*commonpb.Payload); ok {
			fn(path, p)
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := path + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					walkMessage(mv.Message(), fmt.Sprintf("%s[%s]", name, k.String()), fn)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					walkMessage(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", name, i), fn)
				}
			}
		case fd.Message() != nil:
			walkMessage(v.Message(), name, fn)
		}
		return true
	})
}
