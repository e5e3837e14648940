// Command validate-manifests checks Kubernetes manifests rendered by
// `helm template` offline: every object is decoded strictly into the
// Kubernetes API's own Go types (k8s.io/api, and the Prometheus Operator's
// for ServiceMonitor), so an unknown or misspelt field, a duplicate field,
// a wrong type or an unknown kind fails; then names and labels are checked
// with apimachinery's validators, and the chart's own promises are checked
// across objects: Service and probe ports name container ports, selectors
// select the pods, the pod is locked down, and terminationGracePeriodSeconds
// covers the preStop sleep plus sealgate's shutdown_grace.
//
// Usage: validate-manifests FILE...   (multi-document YAML; "-" is stdin)
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The kinds the chart may render; anything else is an error.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme,
		autoscalingv2.AddToScheme, networkingv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

type objects struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	serviceMonitors []*monitoringv1.ServiceMonitor
	netpols         []*networkingv1.NetworkPolicy
	serviceAccounts []*corev1.ServiceAccount
}

type checker struct{ problems []string }

func (c *checker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate-manifests FILE... (- for stdin)")
		os.Exit(2)
	}
	scheme := newScheme()
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	total := 0
	failed := false
	for _, file := range os.Args[1:] {
		c := &checker{}
		n := validateFile(file, strict, c)
		total += n
		if len(c.problems) > 0 {
			failed = true
			for _, p := range c.problems {
				fmt.Fprintf(os.Stderr, "%s: %s\n", file, p)
			}
		} else {
			fmt.Printf("%s: %d objects ok\n", file, n)
		}
	}
	if failed {
		os.Exit(1)
	}
	fmt.Printf("%d objects valid\n", total)
}

func validateFile(file string, strict runtime.Decoder, c *checker) int {
	var in io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			c.fail("%v", err)
			return 0
		}
		defer f.Close()
		in = f
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var objs objects
	n := 0
	seen := map[string]bool{}
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.fail("reading YAML: %v", err)
			return n
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			where := "object"
			if gvk != nil {
				where = gvk.Kind
			}
			c.fail("%s %s: %v", where, firstLine(doc), err)
			continue
		}
		n++
		meta, kind := objectMeta(obj), gvk.Kind
		id := kind + "/" + meta.GetName()
		if seen[id] {
			c.fail("%s is rendered twice", id)
		}
		seen[id] = true
		for _, msg := range validation.IsDNS1123Subdomain(meta.GetName()) {
			c.fail("%s: name: %s", id, msg)
		}
		if kind == "Service" {
			for _, msg := range validation.IsDNS1035Label(meta.GetName()) {
				c.fail("%s: name: %s", id, msg)
			}
		}
		checkLabels(c, id+" metadata.labels", meta.GetLabels())
		switch o := obj.(type) {
		case *appsv1.Deployment:
			objs.deployments = append(objs.deployments, o)
		case *corev1.Service:
			objs.services = append(objs.services, o)
		case *corev1.ConfigMap:
			objs.configMaps = append(objs.configMaps, o)
		case *corev1.Secret:
			objs.secrets = append(objs.secrets, o)
		case *policyv1.PodDisruptionBudget:
			objs.pdbs = append(objs.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			objs.hpas = append(objs.hpas, o)
		case *monitoringv1.ServiceMonitor:
			objs.serviceMonitors = append(objs.serviceMonitors, o)
		case *networkingv1.NetworkPolicy:
			objs.netpols = append(objs.netpols, o)
		case *corev1.ServiceAccount:
			objs.serviceAccounts = append(objs.serviceAccounts, o)
		}
	}
	checkChart(c, &objs)
	return n
}

type metaObject interface {
	GetName() string
	GetLabels() map[string]string
}

func objectMeta(o runtime.Object) metaObject {
	if m, ok := o.(metaObject); ok {
		return m
	}
	panic(fmt.Sprintf("%T has no ObjectMeta", o))
}

func checkLabels(c *checker, where string, l map[string]string) {
	for k, v := range l {
		for _, msg := range validation.IsQualifiedName(k) {
			c.fail("%s: key %q: %s", where, k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			c.fail("%s: %q: %s", where, k, msg)
		}
	}
}

// The cross-object promises of deploy/helm/sealgate.
func checkChart(c *checker, o *objects) {
	if len(o.deployments) != 1 {
		c.fail("expected exactly one Deployment, got %d", len(o.deployments))
		return
	}
	d := o.deployments[0]
	pod := d.Spec.Template
	sel, err := metav1LabelSelector(d.Spec.Selector)
	if err != nil {
		c.fail("Deployment selector: %v", err)
		return
	}
	if !sel.Matches(labels.Set(pod.Labels)) {
		c.fail("Deployment selector does not select its own pod template")
	}
	checkLabels(c, "pod template labels", pod.Labels)
	selects := func(what string, s map[string]string) {
		if len(s) == 0 || !labels.SelectorFromSet(s).Matches(labels.Set(pod.Labels)) {
			c.fail("%s does not select the gateway pods", what)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		c.fail("expected one container, got %d", len(pod.Spec.Containers))
		return
	}
	ctr := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
		for _, msg := range validation.IsValidPortName(p.Name) {
			c.fail("container port %q: %s", p.Name, msg)
		}
	}
	namedPort := func(what string, p intstr.IntOrString) {
		if p.Type == intstr.String {
			if _, ok := ports[p.StrVal]; !ok {
				c.fail("%s names port %q, which the container does not have", what, p.StrVal)
			}
		}
	}

	// Probes on the admin listener.
	for name, probe := range map[string]*corev1.Probe{"livenessProbe": ctr.LivenessProbe, "readinessProbe": ctr.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			c.fail("%s: missing, or not an HTTP GET", name)
			continue
		}
		namedPort(name, probe.HTTPGet.Port)
	}
	if p := ctr.LivenessProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path != "/live" {
		c.fail("livenessProbe path %q, want /live", p.HTTPGet.Path)
	}
	if p := ctr.ReadinessProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path != "/ready" {
		c.fail("readinessProbe path %q, want /ready", p.HTTPGet.Path)
	}

	// Locked down.
	psc, sc := pod.Spec.SecurityContext, ctr.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		c.fail("pod securityContext.runAsNonRoot is not true")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		c.fail("pod securityContext.seccompProfile is not RuntimeDefault")
	}
	if sc == nil {
		c.fail("container securityContext missing")
	} else {
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			c.fail("container readOnlyRootFilesystem is not true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			c.fail("container allowPrivilegeEscalation is not false")
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
			c.fail("container capabilities: want drop [ALL] and nothing added")
		}
	}
	if ctr.Resources.Limits.Memory().IsZero() {
		c.fail("container has no memory limit")
	}

	// Volumes: whole mounts (a subPath never sees a Secret update).
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	for _, m := range ctr.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			c.fail("volumeMount %q has no volume", m.Name)
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			c.fail("volumeMount %q uses subPath: updates would never reach the pod", m.Name)
		}
		if !m.ReadOnly {
			c.fail("volumeMount %q is writable", m.Name)
		}
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			if !hasConfigMap(o, v.ConfigMap.Name) {
				c.fail("volume %q: ConfigMap %q is not rendered", v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			if v.Secret.DefaultMode != nil && *v.Secret.DefaultMode&0o007 != 0 {
				c.fail("volume %q: mode %04o lets others read the keys", v.Name, *v.Secret.DefaultMode)
			}
		}
	}

	// Drain: terminationGracePeriodSeconds > preStop sleep + shutdown_grace.
	var sleep int64
	if l := ctr.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil {
		c.fail("no preStop sleep: the pod would get SIGTERM while still in the endpoints")
	} else {
		sleep = l.PreStop.Sleep.Seconds
	}
	grace, err := shutdownGrace(o)
	if err != nil {
		c.fail("%v", err)
	} else if tgp := pod.Spec.TerminationGracePeriodSeconds; tgp == nil || time.Duration(*tgp)*time.Second <= time.Duration(sleep)*time.Second+grace {
		c.fail("terminationGracePeriodSeconds must exceed preStop %ds + shutdown_grace %v", sleep, grace)
	}

	// Services.
	if len(o.services) == 0 {
		c.fail("no Service")
	}
	for _, s := range o.services {
		selects("Service "+s.Name, s.Spec.Selector)
		for _, p := range s.Spec.Ports {
			namedPort("Service "+s.Name+" port "+p.Name, p.TargetPort)
		}
	}
	for _, p := range o.pdbs {
		if p.Spec.Selector == nil {
			c.fail("PodDisruptionBudget %s has no selector", p.Name)
		} else {
			selects("PodDisruptionBudget "+p.Name, p.Spec.Selector.MatchLabels)
		}
	}
	for _, h := range o.hpas {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name {
			c.fail("HorizontalPodAutoscaler %s targets %s/%s, not the Deployment", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
		if d.Spec.Replicas != nil {
			c.fail("with an HorizontalPodAutoscaler the Deployment must leave replicas unset")
		}
	}
	for _, m := range o.serviceMonitors {
		matched := false
		for _, s := range o.services {
			if labels.SelectorFromSet(m.Spec.Selector.MatchLabels).Matches(labels.Set(s.Labels)) {
				for _, e := range m.Spec.Endpoints {
					for _, p := range s.Spec.Ports {
						if p.Name == e.Port {
							matched = true
						}
					}
				}
			}
		}
		if !matched {
			c.fail("ServiceMonitor %s selects no Service port", m.Name)
		}
	}
	for _, np := range o.netpols {
		selects("NetworkPolicy "+np.Name, np.Spec.PodSelector.MatchLabels)
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port != nil {
					namedPort("NetworkPolicy "+np.Name+" ingress", *p.Port)
				}
			}
		}
		if len(np.Spec.Egress) == 0 {
			c.fail("NetworkPolicy %s allows no egress: the upstream is unreachable", np.Name)
		}
	}
	if sa := pod.Spec.ServiceAccountName; sa != "" && sa != "default" && len(o.serviceAccounts) > 0 {
		found := false
		for _, s := range o.serviceAccounts {
			found = found || s.Name == sa
		}
		if !found {
			c.fail("serviceAccountName %q is not rendered", sa)
		}
	}
}

func hasConfigMap(o *objects, name string) bool {
	for _, cm := range o.configMaps {
		if cm.Name == name {
			return true
		}
	}
	return false
}

var durationPart = regexp.MustCompile(`^(\d+)(ms|s|m|h)`)

// shutdownGrace reads [proxy] shutdown_grace from the rendered sealgate.toml
// (which must parse as TOML); sealgate's default is 30s.
func shutdownGrace(o *objects) (time.Duration, error) {
	for _, cm := range o.configMaps {
		text, ok := cm.Data["sealgate.toml"]
		if !ok {
			continue
		}
		var doc struct {
			Proxy struct {
				ShutdownGrace string `toml:"shutdown_grace"`
			} `toml:"proxy"`
		}
		if _, err := toml.Decode(text, &doc); err != nil {
			return 0, fmt.Errorf("ConfigMap %s: sealgate.toml is not TOML: %v", cm.Name, err)
		}
		s := doc.Proxy.ShutdownGrace
		if s == "" {
			return 30 * time.Second, nil
		}
		var total time.Duration
		for rest := s; rest != ""; {
			m := durationPart.FindStringSubmatch(rest)
			if m == nil {
				return 0, fmt.Errorf("shutdown_grace %q: not a duration this check reads", s)
			}
			n, _ := strconv.Atoi(m[1])
			unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
			total += time.Duration(n) * unit
			rest = rest[len(m[0]):]
		}
		return total, nil
	}
	return 0, errors.New("no ConfigMap with sealgate.toml")
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") || t == "---" {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

func firstLine(doc []byte) string {
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "# Source:") {
			return "(" + strings.TrimPrefix(line, "# ") + ")"
		}
	}
	return ""
}

func metav1LabelSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, errors.New("missing")
	}
	return metav1.LabelSelectorAsSelector(s)
}
