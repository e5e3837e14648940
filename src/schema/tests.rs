//! Spot checks of the plan; tests/it/plan_coverage.rs checks all of it against
//! an independent computation.

use super::*;

fn field(schema: &Schema, msg: &str, name: &str) -> Option<Action> {
    let plan = schema.message(schema.message_id(msg).unwrap());
    plan.fields()
        .iter()
        .find(|f| &*f.name == name)
        .map(|f| f.action)
}

#[test]
fn known_paths_are_planned() {
    let s = Schema::embedded().unwrap();
    let start = "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest";
    assert_eq!(
        field(&s, start, "input"),
        Some(Action::Message(
            s.message_id("temporal.api.common.v1.Payloads").unwrap()
        ))
    );
    assert!(field(&s, start, "memo").is_some());
    assert!(field(&s, start, "header").is_some());
    // Search attributes stay plaintext: the field is pruned at every level.
    assert_eq!(field(&s, start, "search_attributes"), None);
    assert!(
        s.message(
            s.message_id("temporal.api.common.v1.SearchAttributes")
                .unwrap()
        )
        .is_empty()
    );
    // Update requests travel as Any in protocol messages.
    assert_eq!(
        field(&s, "temporal.api.protocol.v1.Message", "body"),
        Some(Action::Any)
    );
    // Recursion: a failure's cause is a failure.
    let failure = s.message_id(FAILURE).unwrap();
    assert_eq!(field(&s, FAILURE, "cause"), Some(Action::Message(failure)));
    assert_eq!(
        field(&s, FAILURE, "encoded_attributes"),
        Some(Action::Payload)
    );
    assert_eq!(s.message(failure).kind(), MessageKind::Failure);
    // Status details in grpc-status-details-bin.
    assert_eq!(field(&s, RPC_STATUS, "details"), Some(Action::Any));
    // Maps of payloads go through their entry type.
    let memo_entry = s
        .message_id("temporal.api.common.v1.Memo.FieldsEntry")
        .unwrap();
    assert_eq!(
        field(&s, "temporal.api.common.v1.Memo", "fields"),
        Some(Action::Message(memo_entry))
    );
    assert_eq!(
        field(&s, "temporal.api.common.v1.Memo.FieldsEntry", "value"),
        Some(Action::Payload)
    );
    // Messages with nothing to encode have empty plans.
    assert!(
        s.message(
            s.message_id("temporal.api.common.v1.WorkflowExecution")
                .unwrap()
        )
        .is_empty()
    );
}

#[test]
fn workflow_service_methods_are_all_unary_and_resolved() {
    let s = Schema::embedded().unwrap();
    let wf: Vec<&Method> = s
        .methods()
        .filter(|m| &*m.service == WORKFLOW_SERVICE)
        .collect();
    assert!(wf.len() >= 100, "WorkflowService has {} methods", wf.len());
    assert!(wf.iter().all(|m| m.is_unary()));
    let with_payloads = wf
        .iter()
        .filter(|m| !s.message(m.input).is_empty() || !s.message(m.output).is_empty())
        .count();
    eprintln!(
        "WorkflowService: {} methods, {with_payloads} carry payloads in request or response",
        wf.len()
    );
    let m = s
        .method("/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution")
        .unwrap();
    assert_eq!(
        s.message(m.input).name(),
        "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest"
    );
}

#[test]
fn type_urls_resolve() {
    let s = Schema::embedded().unwrap();
    let id = s
        .resolve_type_url(b"type.googleapis.com/temporal.api.update.v1.Request")
        .unwrap();
    assert_eq!(s.message(id).name(), "temporal.api.update.v1.Request");
    assert!(
        s.resolve_type_url(b"type.googleapis.com/no.such.Type")
            .is_none()
    );
    assert!(s.resolve_type_url(b"\xff\xfe").is_none());
}

#[test]
fn bad_descriptor_sets_are_clear_errors() {
    let err = Schema::from_descriptor_set(b"\x0a\x05garbage").unwrap_err();
    assert!(err.to_string().contains("FileDescriptorSet"), "{err}");
    let empty = Schema::from_descriptor_set(b"").unwrap_err();
    assert!(empty.to_string().contains(PAYLOAD), "{empty}");
}

#[test]
fn the_namespace_plan_finds_namespace_fields_at_any_depth() {
    let s = Schema::embedded_namespaces().unwrap();
    let field = |msg: &str, n: u32| {
        let id = s.message_id(msg).unwrap();
        s.message(id).field(n).map(|f| f.action)
    };
    // StartWorkflowExecutionRequest.namespace = 1
    assert_eq!(
        field(
            "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest",
            1
        ),
        Some(Action::Payload)
    );
    // A child workflow's namespace inside a completed workflow task's commands.
    let cmd = "temporal.api.command.v1.StartChildWorkflowExecutionCommandAttributes";
    let id = s.message_id(cmd).unwrap();
    assert!(
        s.message(id)
            .fields()
            .iter()
            .any(|f| &*f.name == "namespace")
    );
    let resp = "temporal.api.workflowservice.v1.RespondWorkflowTaskCompletedRequest";
    assert!(!s.message(s.message_id(resp).unwrap()).is_empty());
    // History events name namespaces too (parent_workflow_namespace).
    let started = "temporal.api.history.v1.WorkflowExecutionStartedEventAttributes";
    let id = s.message_id(started).unwrap();
    assert!(
        s.message(id)
            .fields()
            .iter()
            .any(|f| &*f.name == "parent_workflow_namespace")
    );
    // DescribeNamespace's answer names the namespace in NamespaceInfo.name.
    assert_eq!(
        field("temporal.api.namespace.v1.NamespaceInfo", 1),
        Some(Action::Payload)
    );
    // Payloads are not leaves here, and the codec's plan is unchanged.
    let payloads = Schema::embedded().unwrap();
    let p = payloads.message_id(cmd).unwrap();
    assert!(
        !payloads
            .message(p)
            .fields()
            .iter()
            .any(|f| &*f.name == "namespace")
    );
}

#[test]
fn field_lookup_agrees_with_the_plan_for_every_number() {
    for schema in [
        Schema::embedded().unwrap(),
        Schema::embedded_namespaces().unwrap(),
    ] {
        for (_, plan) in schema.messages() {
            for n in 0..1100 {
                let scanned = plan.fields().iter().find(|f| f.number == n);
                assert_eq!(
                    plan.field(n).map(|f| f.number),
                    scanned.map(|f| f.number),
                    "{} field {n}",
                    plan.name()
                );
            }
        }
    }
}

#[test]
fn plaintext_paths_come_from_the_configuration() {
    let provider = "temporal.api.compute.v1.ComputeProvider";
    let planned = |s: &Schema| {
        let id = s.message_id(provider).unwrap();
        s.message(id).field(2).is_some()
    };
    let defaults: Vec<String> = DEFAULT_PLAINTEXT_PATHS
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(!planned(
        &Schema::embedded_with_plaintext(&defaults).unwrap()
    ));
    // An empty list encrypts compute details too; search attributes stay.
    let none = Schema::embedded_with_plaintext(&[]).unwrap();
    assert!(planned(&none));
    let sa = none
        .message_id("temporal.api.common.v1.SearchAttributes")
        .unwrap();
    assert!(none.message(sa).is_empty());
    for bad in [
        "temporal.api.compute.v1.ComputeProvider.nope",
        "temporal.api.compute.v1.Nope.details",
        "details",
        "temporal.api.common.v1.Payload.data", // bytes, not a payload path
    ] {
        let e = Schema::embedded_with_plaintext(&[bad.to_string()]).unwrap_err();
        assert!(e.to_string().contains("plaintext_paths"), "{bad}: {e}");
    }
}

/// The embedded set, changed by `edit`, written to a temporary file.
fn edited_set(
    name: &str,
    edit: impl FnOnce(&mut prost_types::FileDescriptorSet),
) -> std::path::PathBuf {
    let mut set: prost_types::FileDescriptorSet =
        prost::Message::decode(EMBEDDED_DESCRIPTOR_SET).unwrap();
    edit(&mut set);
    let path = std::env::temp_dir().join(format!("sealgate-{}-{name}.fds", std::process::id()));
    std::fs::write(&path, prost::Message::encode_to_vec(&set)).unwrap();
    path
}

fn message_mut<'a>(
    set: &'a mut prost_types::FileDescriptorSet,
    package: &str,
    name: &str,
) -> &'a mut prost_types::DescriptorProto {
    set.file
        .iter_mut()
        .filter(|f| f.package() == package)
        .flat_map(|f| f.message_type.iter_mut())
        .find(|m| m.name() == name)
        .unwrap()
}

#[test]
fn a_descriptor_set_file_must_be_the_temporal_api() {
    let path = edited_set("no-service", |set| {
        for f in &mut set.file {
            f.service.retain(|s| s.name() != "WorkflowService");
        }
    });
    let err = Descriptors::load(&path).unwrap_err();
    assert!(err.to_string().contains("WorkflowService"), "{err}");
    std::fs::write(&path, b"not a descriptor set").unwrap();
    assert!(matches!(
        Descriptors::load(&path),
        Err(SchemaError::Decode(_))
    ));
    let missing = path.with_extension("missing");
    let err = Descriptors::load(&missing).unwrap_err();
    assert!(err.to_string().contains("descriptor_set"), "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_loaded_set_is_used_and_named() {
    const WF: &str = "temporal.api.workflowservice.v1";
    let path = edited_set("newer", |set| {
        // A newer API: a payload field on a request message that has none.
        let m = message_mut(set, WF, "DescribeWorkflowExecutionRequest");
        m.field.push(prost_types::FieldDescriptorProto {
            name: Some("future_payload".into()),
            number: Some(99),
            label: Some(1),
            r#type: Some(11),
            type_name: Some(".temporal.api.common.v1.Payload".into()),
            ..Default::default()
        });
    });
    let d = Descriptors::load(&path).unwrap();
    assert_eq!(d.info().source, path.display().to_string());
    assert_eq!(d.info().digest.len(), 16);
    let s = d.payloads(&[]).unwrap();
    assert!(s.info().label().contains(&*path.display().to_string()));
    let req = format!("{WF}.DescribeWorkflowExecutionRequest");
    assert_eq!(field(&s, &req, "future_payload"), Some(Action::Payload));
    // The diff names it as a request-side gap of the embedded schema.
    let diff = diff::diff(&Descriptors::embedded().unwrap(), &d).unwrap();
    assert_eq!(diff.request_gaps, vec![format!("{req}.future_payload")]);
    assert!(diff.has_request_gaps());
    assert!(diff.removed_paths.is_empty() && diff.added_rpcs.is_empty());
    // And the other way round: a path the file lacks is "removed".
    let back = diff::diff(&d, &Descriptors::embedded().unwrap()).unwrap();
    assert_eq!(back.removed_paths, vec![format!("{req}.future_payload")]);
    assert!(!back.has_request_gaps());
    assert!(back.render().contains("- payload path"));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_diff_sees_new_rpcs_and_retyped_fields() {
    const WF: &str = "temporal.api.workflowservice.v1";
    let path = edited_set("rpc", |set| {
        let svc = set
            .file
            .iter_mut()
            .flat_map(|f| f.service.iter_mut())
            .find(|s| s.name() == "WorkflowService")
            .unwrap();
        let mut m = svc.method[0].clone();
        m.name = Some("FutureThing".into());
        svc.method.push(m);
        let start = message_mut(set, WF, "StartWorkflowExecutionRequest");
        let memo = start.field.iter_mut().find(|f| f.name() == "memo").unwrap();
        memo.type_name = Some(".temporal.api.common.v1.Payloads".into());
    });
    let d = Descriptors::load(&path).unwrap();
    let diff = diff::diff(&Descriptors::embedded().unwrap(), &d).unwrap();
    assert_eq!(
        diff.added_rpcs,
        vec![format!("{WF}.WorkflowService/FutureThing")]
    );
    assert!(
        diff.retyped.contains(&format!(
            "{WF}.StartWorkflowExecutionRequest.memo: temporal.api.common.v1.Memo -> temporal.api.common.v1.Payloads"
        )),
        "{:?}",
        diff.retyped
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_set_without_rpc_status_or_health_gets_them_from_the_embedded_one() {
    // What `buf build` of temporalio/api gives: no google/rpc/status.proto
    // (no Temporal file imports it) and no health service.
    let path = edited_set("api-only", |set| {
        set.file
            .retain(|f| f.name() != "google/rpc/status.proto" && f.package() != "grpc.health.v1");
    });
    let d = Descriptors::load(&path).unwrap();
    let s = d.payloads(&[]).unwrap();
    // Error details still decode: Status is planned (its Any details).
    let status = s.message_id(RPC_STATUS).expect("google.rpc.Status added");
    assert!(!s.message(status).is_empty());
    assert!(s.defines_service("grpc.health.v1.Health"));
    // The digest is the file's own.
    let file = std::fs::read(&path).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &file);
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(d.info().digest, hex);
    std::fs::remove_file(&path).unwrap();
}
