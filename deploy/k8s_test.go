package deploy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The parts of the Kubernetes objects the checks read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
}

type statefulSetSpec struct {
	ServiceName string `yaml:"serviceName"`
	Replicas    int    `yaml:"replicas"`
	Selector    struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	RetentionPolicy struct {
		WhenDeleted string `yaml:"whenDeleted"`
		WhenScaled  string `yaml:"whenScaled"`
	} `yaml:"persistentVolumeClaimRetentionPolicy"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
	VolumeClaimTemplates []struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			Resources struct {
				Requests map[string]string `yaml:"requests"`
			} `yaml:"resources"`
		} `yaml:"spec"`
	} `yaml:"volumeClaimTemplates"`
}

type podSpec struct {
	AutomountServiceAccountToken  *bool       `yaml:"automountServiceAccountToken"`
	EnableServiceLinks            *bool       `yaml:"enableServiceLinks"`
	TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               secContext  `yaml:"securityContext"`
	InitContainers                []container `yaml:"initContainers"`
	Containers                    []container `yaml:"containers"`
	Volumes                       []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode *int   `yaml:"defaultMode"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		EmptyDir *struct {
			Medium string `yaml:"medium"`
		} `yaml:"emptyDir"`
		PersistentVolumeClaim *struct{} `yaml:"persistentVolumeClaim"`
		HostPath              *struct{} `yaml:"hostPath"`
	} `yaml:"volumes"`
}

type secContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	RunAsUser                *int  `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool `yaml:"privileged"`
	Capabilities             struct {
		Drop []string `yaml:"drop"`
		Add  []string `yaml:"add"`
	} `yaml:"capabilities"`
	SeccompProfile struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct{} `yaml:"secretKeyRef"`
			FieldRef     *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext secContext `yaml:"securityContext"`
	VolumeMounts    []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type serviceSpec struct {
	Type                     string            `yaml:"type"`
	ClusterIP                string            `yaml:"clusterIP"`
	ExternalTrafficPolicy    string            `yaml:"externalTrafficPolicy"`
	SessionAffinity          string            `yaml:"sessionAffinity"`
	Selector                 map[string]string `yaml:"selector"`
	PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
	Ports                    []struct {
		Name       string    `yaml:"name"`
		Port       int       `yaml:"port"`
		TargetPort yaml.Node `yaml:"targetPort"`
		Protocol   string    `yaml:"protocol"`
	} `yaml:"ports"`
}

type pdbSpec struct {
	MaxUnavailable yaml.Node `yaml:"maxUnavailable"` // Kind 0: not set
	MinAvailable   yaml.Node `yaml:"minAvailable"`
	Selector       struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
}

// kustomize renders a kustomization directory with the kubectl on PATH
// (.ci/run makes sure there is one).
func kustomize(t *testing.T, dir string) []k8sObject {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is needed to render deploy/k8s (kubectl kustomize): %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	var objs []k8sObject
	dec := yaml.NewDecoder(&stdout)
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", dir, err)
		}
		objs = append(objs, o)
	}
	if len(objs) == 0 {
		t.Fatalf("kubectl kustomize %s rendered nothing", dir)
	}
	return objs
}

func decodeSpec(t *testing.T, o k8sObject, into any) {
	t.Helper()
	if err := o.Spec.Decode(into); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
}

// rendered is the base, rendered once per test, with its objects by kind.
type rendered struct {
	objs     []k8sObject
	sts      statefulSetSpec
	pod      podSpec
	main     container
	args     map[string]string
	services map[string]serviceSpec
	config   map[string]k8sObject // ConfigMaps and Secrets by name
}

func renderBase(t *testing.T, dir string) rendered {
	t.Helper()
	s := bodycamSettings(t)
	r := rendered{objs: kustomize(t, dir), services: map[string]serviceSpec{}, config: map[string]k8sObject{}}
	var sets int
	for _, o := range r.objs {
		switch o.Kind {
		case "StatefulSet":
			sets++
			decodeSpec(t, o, &r.sts)
		case "Service":
			var sp serviceSpec
			decodeSpec(t, o, &sp)
			r.services[o.Metadata.Name] = sp
		case "ConfigMap", "Secret":
			r.config[o.Metadata.Name] = o
		case "Deployment", "DaemonSet":
			t.Errorf("%s %s: bodycam runs as a StatefulSet (a spool volume per pod)", o.Kind, o.Metadata.Name)
		}
	}
	if sets != 1 {
		t.Fatalf("want one StatefulSet, rendered %d", sets)
	}
	r.pod = r.sts.Template.Spec
	for _, c := range r.pod.Containers {
		if c.Name == "bodycam" {
			r.main = c
		}
	}
	if r.main.Name == "" {
		t.Fatal("the StatefulSet has no container named bodycam")
	}
	r.args = s.args(t, "statefulset bodycam args", r.main.Args)
	return r
}

// mountOf is the volume mounted at the directory holding p in c, or "".
func mountOf(c container, p string) (volume, mountPath string) {
	best := ""
	for _, m := range c.VolumeMounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		if (p == mp || strings.HasPrefix(p, mp+"/")) && len(mp) > len(best) {
			best, volume = mp, m.Name
		}
	}
	return volume, best
}

// portNumber resolves a probe's or Service's port (a number or a container
// port's name) in c.
func portNumber(t *testing.T, c container, n yaml.Node, proto string) int {
	t.Helper()
	if v, err := strconv.Atoi(n.Value); err == nil {
		return v
	}
	for _, p := range c.Ports {
		if p.Name == n.Value && (proto == "" || p.Protocol == proto || (p.Protocol == "" && proto == "TCP")) {
			return p.ContainerPort
		}
	}
	t.Fatalf("port %q is not a %s port of container %s", n.Value, proto, c.Name)
	return 0
}

func TestK8sProbesAndPorts(t *testing.T) {
	s := bodycamSettings(t)
	r := renderBase(t, "k8s")
	c := r.main

	// The container listens where its ports say: the defaults, or what the
	// args set.
	httpPort := addrPort(t, "http-addr", s.setting(t, r.args, "http-addr"))
	rtspPort := addrPort(t, "rtsp-addr", s.setting(t, r.args, "rtsp-addr"))
	udpPort := addrPort(t, "webrtc-udp-addr", s.setting(t, r.args, "webrtc-udp-addr"))
	tcpPort := addrPort(t, "webrtc-tcp-addr", s.setting(t, r.args, "webrtc-tcp-addr"))
	for what, got := range map[string][2]int{
		"http": {httpPort, s.port(t, "http-addr")}, "rtsp": {rtspPort, s.port(t, "rtsp-addr")},
		"webrtc udp": {udpPort, s.port(t, "webrtc-udp-addr")}, "webrtc tcp": {tcpPort, s.port(t, "webrtc-tcp-addr")},
	} {
		if got[0] != got[1] {
			t.Errorf("%s port %d differs from bodycam's default %d: keep the defaults, or change this test with them", what, got[0], got[1])
		}
	}
	// Every metric, the per-device ones too, on --metrics-addr, where
	// Prometheus scrapes (the pod's annotations say so).
	metricsPort := addrPort(t, "metrics-addr", s.setting(t, r.args, "metrics-addr"))
	if metricsPort != scrapePort(t) {
		t.Errorf("--metrics-addr port %d, but deploy/prometheus scrapes %d", metricsPort, scrapePort(t))
	}
	want := map[string]int{"TCP/" + strconv.Itoa(httpPort): 0, "TCP/" + strconv.Itoa(rtspPort): 0, "UDP/" + strconv.Itoa(udpPort): 0,
		"TCP/" + strconv.Itoa(tcpPort): 0, "TCP/" + strconv.Itoa(metricsPort): 0}
	for _, p := range c.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		k := proto + "/" + strconv.Itoa(p.ContainerPort)
		if _, ok := want[k]; !ok {
			t.Errorf("container port %s (%s) is none of bodycam's listeners", k, p.Name)
		}
		want[k]++
	}
	for k, n := range want {
		if n == 0 {
			t.Errorf("container port %s missing", k)
		}
	}

	// Probes: liveness on /healthz, readiness on /readyz, and a startup
	// probe, all on the HTTP port.
	for _, p := range []struct {
		name, path string
		pr         *probe
	}{{"startupProbe", "", c.StartupProbe}, {"livenessProbe", "/healthz", c.LivenessProbe}, {"readinessProbe", "/readyz", c.ReadinessProbe}} {
		if p.pr == nil || p.pr.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", p.name)
			continue
		}
		if p.path != "" && p.pr.HTTPGet.Path != p.path {
			t.Errorf("%s: path %q, want %q", p.name, p.pr.HTTPGet.Path, p.path)
		}
		if p.pr.HTTPGet.Path != "/healthz" && p.pr.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: path %q is not bodycam's /healthz or /readyz", p.name, p.pr.HTTPGet.Path)
		}
		if got := portNumber(t, c, p.pr.HTTPGet.Port, "TCP"); got != httpPort {
			t.Errorf("%s: port %d, want the HTTP port %d", p.name, got, httpPort)
		}
	}

	// Services: the headless one with every port, RTSP and HTTP for
	// clients (keeping the client's address and its pod), and one WebRTC
	// Service per pod.
	headless, ok := r.services[r.sts.ServiceName]
	if !ok || headless.ClusterIP != "None" {
		t.Errorf("the StatefulSet's serviceName %q is not a headless Service", r.sts.ServiceName)
	}
	exposes := func(sp serviceSpec, proto string, port int) bool {
		for _, p := range sp.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = "TCP"
			}
			if pp == proto && p.Port == port && portNumber(t, c, p.TargetPort, proto) == port {
				return true
			}
		}
		return false
	}
	for proto, port := range map[string]int{"TCP": httpPort, "UDP": udpPort} {
		if !exposes(headless, proto, port) {
			t.Errorf("headless Service lacks %s %d", proto, port)
		}
	}
	if !exposes(headless, "TCP", rtspPort) || !exposes(headless, "TCP", tcpPort) {
		t.Errorf("headless Service lacks TCP %d or %d", rtspPort, tcpPort)
	}
	var rtspSvc, httpSvc int
	webrtc := map[string]bool{}
	for name, sp := range r.services {
		if name == r.sts.ServiceName {
			continue
		}
		for k, v := range sp.Selector {
			if r.sts.Template.Metadata.Labels[k] != v && k != "statefulset.kubernetes.io/pod-name" {
				t.Errorf("Service %s selects %s=%s, which the pods do not carry", name, k, v)
			}
		}
		if pod := sp.Selector["statefulset.kubernetes.io/pod-name"]; pod != "" {
			if !exposes(sp, "UDP", udpPort) || !exposes(sp, "TCP", tcpPort) {
				t.Errorf("Service %s (pod %s): want WebRTC UDP %d and TCP %d", name, pod, udpPort, tcpPort)
			}
			webrtc[pod] = true
			continue
		}
		if exposes(sp, "TCP", rtspPort) {
			rtspSvc++
		}
		if exposes(sp, "TCP", httpPort) {
			httpSvc++
		}
		// A LoadBalancer that hid the client's address would put the node's
		// in the custody ledger and share one per-address cap among all.
		if sp.Type == "LoadBalancer" && sp.ExternalTrafficPolicy != "Local" {
			t.Errorf("Service %s: externalTrafficPolicy %q loses the client's address; want Local", name, sp.ExternalTrafficPolicy)
		}
		if sp.SessionAffinity != "ClientIP" {
			t.Errorf("Service %s: sessionAffinity %q; want ClientIP (a recorder stays with its pod)", name, sp.SessionAffinity)
		}
	}
	if rtspSvc != 1 || httpSvc != 1 {
		t.Errorf("want one client Service for RTSP (TCP %d) and one for HTTP (TCP %d), got %d and %d", rtspPort, httpPort, rtspSvc, httpSvc)
	}
	for i := range r.sts.Replicas {
		pod := fmt.Sprintf("%s-%d", "bodycam", i)
		if !webrtc[pod] {
			t.Errorf("no WebRTC Service for pod %s", pod)
		}
	}
}

func TestK8sSpoolOnPersistentVolume(t *testing.T) {
	r := renderBase(t, "k8s")
	claims := map[string]bool{}
	for _, v := range r.sts.VolumeClaimTemplates {
		claims[v.Metadata.Name] = true
		if v.Spec.Resources.Requests["storage"] == "" {
			t.Errorf("volume claim %s requests no storage", v.Metadata.Name)
		}
	}
	for _, flag := range []string{"spool-dir", "data-dir"} {
		dir, ok := r.args[flag]
		if !ok || !path.IsAbs(dir) {
			t.Errorf("--%s: want an absolute path in the args, got %q", flag, dir)
			continue
		}
		vol, _ := mountOf(r.main, dir)
		if !claims[vol] {
			t.Errorf("--%s=%s is on volume %q, not one of the pod's own persistent volumes (volumeClaimTemplates)", flag, dir, vol)
		}
	}
	if sv, _ := mountOf(r.main, r.args["spool-dir"]); sv == "" || func() bool { dv, _ := mountOf(r.main, r.args["data-dir"]); return dv == sv }() {
		t.Errorf("the spool has no volume of its own")
	}
	// A scaled-down or deleted StatefulSet keeps the spools: evidence not
	// yet uploaded.
	if r.sts.RetentionPolicy.WhenDeleted != "Retain" || r.sts.RetentionPolicy.WhenScaled != "Retain" {
		t.Errorf("persistentVolumeClaimRetentionPolicy %+v: want Retain for both", r.sts.RetentionPolicy)
	}
}

func TestK8sSecurityAndShutdown(t *testing.T) {
	s := bodycamSettings(t)
	r := renderBase(t, "k8s")
	pod := r.pod
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod: runAsNonRoot is not true")
	}
	if pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Error("pod: want a non-zero runAsUser")
	}
	if pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod: seccompProfile %q, want RuntimeDefault", pod.SecurityContext.SeccompProfile.Type)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod: automountServiceAccountToken should be false (bodycam needs no Kubernetes API)")
	}
	// Service links would add BODYCAM_*_PORT variables for Services named
	// bodycam-*, where bodycam reads its settings.
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Error("pod: enableServiceLinks should be false")
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		sc := c.SecurityContext
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s: privileged", c.Name)
		}
		if !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s: capabilities drop %v add %v, want drop ALL, add none", c.Name, sc.Capabilities.Drop, sc.Capabilities.Add)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("container %s: runs as root", c.Name)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("container %s: want cpu and memory requests and a memory limit, got %+v", c.Name, c.Resources)
		}
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s is a hostPath", v.Name)
		}
	}

	// The drain must end before the kubelet kills.
	shutdown := s.stopTime(t, r.args)
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	grace := *pod.TerminationGracePeriodSeconds
	if float64(grace) <= shutdown.Seconds() {
		t.Errorf("terminationGracePeriodSeconds %d is not longer than --shutdown-delay plus --shutdown-timeout, %v", grace, shutdown)
	}
}

func TestK8sSecretsFromFiles(t *testing.T) {
	s := bodycamSettings(t)
	r := renderBase(t, "k8s")
	c := r.main
	files, plain := s.secretFlags()
	for _, f := range wantSecretFiles {
		if !slices.Contains(files, f) {
			t.Errorf("--%s: not a secret-file flag of bodycam (cmd/bodycam/config.go)", f)
		}
	}

	// Where each volume's files come from.
	secretVolume := map[string]string{} // volume -> Secret
	memory := map[string]bool{}
	for _, v := range r.pod.Volumes {
		if v.Secret != nil {
			secretVolume[v.Name] = v.Secret.SecretName
		}
		if v.EmptyDir != nil && v.EmptyDir.Medium == "Memory" {
			memory[v.Name] = true
		}
	}
	// An in-memory volume holds secrets only when an init container copies
	// them there from a Secret, 0400 (the kubelet makes Secret files
	// group-readable under fsGroup, and bodycam refuses those).
	filled := map[string]string{} // memory volume -> Secret
	for _, ic := range r.pod.InitContainers {
		var from, to string
		for _, m := range ic.VolumeMounts {
			if secretVolume[m.Name] != "" {
				from = secretVolume[m.Name]
			}
			if memory[m.Name] {
				to = m.Name
			}
		}
		if from != "" && to != "" {
			if !strings.Contains(strings.Join(ic.Command, " "), "0400") {
				t.Errorf("init container %s copies secrets without mode 0400", ic.Name)
			}
			filled[to] = from
		}
	}
	for _, f := range wantSecretFiles {
		p, ok := r.args[f]
		if !ok {
			t.Errorf("--%s not passed", f)
			continue
		}
		vol, mp := mountOf(c, p)
		secretName := secretVolume[vol]
		if secretName == "" {
			secretName = filled[vol]
		}
		if secretName == "" {
			t.Errorf("--%s=%s is not on a volume filled from a Secret", f, p)
			continue
		}
		sec, ok := r.config[secretName]
		if !ok || sec.Kind != "Secret" {
			t.Errorf("--%s: Secret %s is not rendered", f, secretName)
			continue
		}
		key := strings.TrimPrefix(p, mp+"/")
		if _, ok := sec.Data[key]; !ok {
			t.Errorf("--%s=%s: Secret %s has no key %q", f, p, secretName, key)
		}
	}
	// No secret value in the args or the environment.
	for _, p := range plain {
		if _, ok := r.args[p]; ok {
			t.Errorf("--%s in the args: a secret visible in the pod spec and ps; use --%s-file", p, p)
		}
	}
	for _, e := range c.Env {
		if f := s.flagOfEnv(e.Name); slices.Contains(plain, f) {
			t.Errorf("env %s carries a secret; use --%s-file", e.Name, f)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			t.Errorf("env %s comes from a Secret: secrets go in files", e.Name)
		}
	}
	var configMaps int
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			t.Errorf("envFrom Secret %s: secrets go in files", ef.SecretRef.Name)
		}
		if ef.ConfigMapRef == nil {
			continue
		}
		cm, ok := r.config[ef.ConfigMapRef.Name]
		if !ok {
			t.Errorf("envFrom ConfigMap %s is not rendered", ef.ConfigMapRef.Name)
			continue
		}
		configMaps++
		for k := range cm.Data {
			f := s.flagOfEnv(k)
			if f == "" {
				t.Errorf("ConfigMap %s: %s is no bodycam setting", ef.ConfigMapRef.Name, k)
			}
			if slices.Contains(plain, f) {
				t.Errorf("ConfigMap %s: %s carries a secret", ef.ConfigMapRef.Name, k)
			}
		}
	}
	if configMaps == 0 {
		t.Error("no ConfigMap of settings (envFrom)")
	}
	// Each pod's own --config file: one per replica, of known settings.
	if cfg := r.args["config"]; cfg != "" {
		vol, mp := mountOf(c, cfg)
		var cmName string
		for _, v := range r.pod.Volumes {
			if v.Name == vol && v.ConfigMap != nil {
				cmName = v.ConfigMap.Name
			}
		}
		cm, ok := r.config[cmName]
		if !ok {
			t.Fatalf("--config=%s: not on a rendered ConfigMap", cfg)
		}
		for i := range r.sts.Replicas {
			key := strings.ReplaceAll(strings.TrimPrefix(cfg, mp+"/"), "$(POD_NAME)", fmt.Sprintf("bodycam-%d", i))
			body, ok := cm.Data[key]
			if !ok {
				t.Errorf("ConfigMap %s: no %s for pod %d", cmName, key, i)
				continue
			}
			var kv map[string]any
			if err := yaml.Unmarshal([]byte(body), &kv); err != nil {
				t.Errorf("%s: %v", key, err)
			}
			for k := range kv {
				if !s.flags[k] || slices.Contains(plain, k) {
					t.Errorf("%s: %q is no bodycam setting, or a secret", key, k)
				}
			}
		}
	}
}

func TestK8sDisruptionBudget(t *testing.T) {
	r := renderBase(t, "k8s")
	var pdbs int
	for _, o := range r.objs {
		if o.Kind != "PodDisruptionBudget" {
			continue
		}
		pdbs++
		var sp pdbSpec
		decodeSpec(t, o, &sp)
		for k, v := range sp.Selector.MatchLabels {
			if r.sts.Template.Metadata.Labels[k] != v {
				t.Errorf("PodDisruptionBudget %s selects %s=%s, which the pods do not carry", o.Metadata.Name, k, v)
			}
		}
		if len(sp.Selector.MatchLabels) == 0 {
			t.Errorf("PodDisruptionBudget %s selects nothing", o.Metadata.Name)
		}
		// It must let a drain proceed one pod at a time, not block it.
		switch {
		case sp.MaxUnavailable.Kind != 0:
			if n, err := strconv.Atoi(sp.MaxUnavailable.Value); err == nil && n < 1 {
				t.Errorf("maxUnavailable %d blocks every eviction", n)
			}
		case sp.MinAvailable.Kind != 0:
			if n, err := strconv.Atoi(sp.MinAvailable.Value); err == nil && n >= r.sts.Replicas {
				t.Errorf("minAvailable %d of %d replicas blocks every eviction", n, r.sts.Replicas)
			}
		default:
			t.Errorf("PodDisruptionBudget %s sets neither maxUnavailable nor minAvailable", o.Metadata.Name)
		}
	}
	if pdbs != 1 {
		t.Errorf("want one PodDisruptionBudget, got %d", pdbs)
	}
}

// TestK8sOverlaySecrets does what deploy/k8s/README.md tells a site to do:
// an overlay that replaces the placeholder Secret with its own files. The
// StatefulSet must then mount the site's Secret, and carry none of the
// placeholders.
func TestK8sOverlaySecrets(t *testing.T) {
	dir := t.TempDir()
	abs, err := filepath.Abs("k8s")
	if err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Rel(dir, abs) // kustomize takes no absolute paths
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	random := func(n int) string {
		b := make([]byte, n)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	want := map[string]string{
		"admin-token":    random(32) + "\n",
		"s3-access-key":  "bodycam\n",
		"s3-secret-key":  random(24) + "\n",
		"database-url":   "postgres://bodycam:" + random(16) + "@postgres:5432/bodycam?sslmode=require\n",
		"signing-key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"credential-key": random(32) + "\n",
	}
	var files []string
	for name, v := range want {
		if err := os.WriteFile(filepath.Join(dir, "secrets", name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, "      - "+name+"=secrets/"+name)
	}
	slices.Sort(files)
	kust := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + base + "\n" +
		"secretGenerator:\n  - name: bodycam-secrets\n    behavior: replace\n    files:\n" + strings.Join(files, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o600); err != nil {
		t.Fatal(err)
	}
	r := renderBase(t, dir)
	var mounted string
	for _, v := range r.pod.Volumes {
		if v.Secret != nil {
			mounted = v.Secret.SecretName
		}
	}
	sec, ok := r.config[mounted]
	if !ok || sec.Kind != "Secret" {
		t.Fatalf("the StatefulSet mounts Secret %q, which is not rendered", mounted)
	}
	if len(sec.Data) != len(want) {
		t.Errorf("Secret %s has %d keys, want %d", mounted, len(sec.Data), len(want))
	}
	for k, v := range want {
		got, err := base64.StdEncoding.DecodeString(sec.Data[k])
		if err != nil || string(got) != v {
			t.Errorf("Secret %s: key %s is not the site's file", mounted, k)
		}
	}
}
