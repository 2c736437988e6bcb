package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/btda/btda/internal/config"
)

// k8sObject is the part of a Kubernetes manifest the example test reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		ClusterIP   string          `yaml:"clusterIP"`
		ServiceName string          `yaml:"serviceName"`
		Replicas    int             `yaml:"replicas"`
		Template    k8sPodTemplate  `yaml:"template"`
		Claims      []k8sClaimTempl `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type k8sClaimTempl struct {
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
}

type k8sPodTemplate struct {
	Spec struct {
		SecurityContext struct {
			RunAsNonRoot bool `yaml:"runAsNonRoot"`
			RunAsUser    int  `yaml:"runAsUser"`
		} `yaml:"securityContext"`
		Containers []struct {
			Name    string   `yaml:"name"`
			Command []string `yaml:"command"`
			Args    []string `yaml:"args"`
			Env     []struct {
				Name  string `yaml:"name"`
				Value string `yaml:"value"`
			} `yaml:"env"`
			LivenessProbe struct {
				HTTPGet struct {
					Path string `yaml:"path"`
				} `yaml:"httpGet"`
			} `yaml:"livenessProbe"`
			VolumeMounts []struct {
				Name      string `yaml:"name"`
				MountPath string `yaml:"mountPath"`
			} `yaml:"volumeMounts"`
		} `yaml:"containers"`
		Volumes []struct {
			Name      string `yaml:"name"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
		} `yaml:"volumes"`
	} `yaml:"spec"`
}

// TestShardsKubernetesExample checks examples/kubernetes without a cluster: the ConfigMap's
// btda.yml is a valid configuration whose watch list and store sit on the volumes the pods
// mount (the store on the claim template), the Service is headless and names the
// StatefulSet, the shard count equals the replicas and the pod ordinal becomes --shard k/n,
// the pods run as the image's non-root user, and the Prometheus example keeps `instance` as
// the only per-pod label.
func TestShardsKubernetesExample(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "examples", "kubernetes")
	b, err := os.ReadFile(filepath.Join(dir, "btda.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := make(map[string]k8sObject)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("btda.yaml: %v", err)
		}
		objs[o.Kind] = o
	}
	cm, svc, sts := objs["ConfigMap"], objs["Service"], objs["StatefulSet"]
	if cm.Kind == "" || svc.Kind == "" || sts.Kind == "" {
		t.Fatalf("btda.yaml holds %d objects; want a ConfigMap, a Service and a StatefulSet", len(objs))
	}

	// The configuration is valid (btda --config.check) and loads to absolute paths.
	cfgPath := filepath.Join(t.TempDir(), "btda.yml")
	if err := os.WriteFile(cfgPath, []byte(cm.Data["btda.yml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	configCheckElsewhere(t, "ConfigMap btda.yml", cfgPath)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	if svc.Spec.ClusterIP != "None" || sts.Spec.ServiceName != svc.Metadata.Name {
		t.Errorf("Service %s clusterIP %q, StatefulSet serviceName %q: want a headless Service named by the StatefulSet",
			svc.Metadata.Name, svc.Spec.ClusterIP, sts.Spec.ServiceName)
	}
	pod := sts.Spec.Template.Spec
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser != 10001 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot with the image's user 10001", pod.SecurityContext)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want btda alone", len(pod.Containers))
	}
	c := pod.Containers[0]
	shards := ""
	for _, e := range c.Env {
		if e.Name == "SHARDS" {
			shards = e.Value
		}
	}
	if shards != strconv.Itoa(sts.Spec.Replicas) {
		t.Errorf("SHARDS=%q, replicas %d: every torrent must belong to exactly one pod", shards, sts.Spec.Replicas)
	}
	cmd := strings.Join(append(c.Command, c.Args...), " ")
	if !strings.Contains(cmd, `--shard="${HOSTNAME##*-}/${SHARDS}"`) || !strings.Contains(cmd, "--config.file=/etc/btda/btda.yml") {
		t.Errorf("container command %q: want --config.file=/etc/btda/btda.yml and the ordinal as --shard", cmd)
	}
	// What the shell makes of it for pod btda-1.
	if got := regexp.MustCompile(`^.*-`).ReplaceAllString(sts.Metadata.Name+"-1", ""); got != "1" {
		t.Errorf("pod name %s-1 gives shard %q", sts.Metadata.Name, got)
	}
	if c.LivenessProbe.HTTPGet.Path != "/-/healthy" {
		t.Errorf("liveness probe %q, want /-/healthy", c.LivenessProbe.HTTPGet.Path)
	}

	// Every path btda reads or writes is on a volume: config and watch list on ConfigMaps,
	// the store on the claim template.
	mounts := make(map[string]string) // mount path → volume
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	volumeOf := func(p string) string {
		for ; p != "/"; p = filepath.Dir(p) {
			if v, ok := mounts[p]; ok {
				return v
			}
		}
		return ""
	}
	configMaps := make(map[string]string) // volume → ConfigMap
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil {
			configMaps[v.Name] = v.ConfigMap.Name
		}
	}
	if v := volumeOf("/etc/btda/btda.yml"); configMaps[v] != cm.Metadata.Name {
		t.Errorf("/etc/btda/btda.yml is on volume %q, not ConfigMap %s", v, cm.Metadata.Name)
	}
	for _, p := range []string{cfg.Torrents.Directory, cfg.Torrents.MagnetFile} {
		if configMaps[volumeOf(p)] == "" {
			t.Errorf("watch list %s is not on a ConfigMap volume (mounts %v)", p, mounts)
		}
	}
	claim := volumeOf(cfg.Storage.Path)
	found := false
	for _, ct := range sts.Spec.Claims {
		found = found || ct.Metadata.Name == claim
	}
	if !found {
		t.Errorf("store %s is on volume %q, not a volumeClaimTemplate", cfg.Storage.Path, claim)
	}

	// The Prometheus example: job btda, instance from the pod name, no labelmap that would
	// keep per-pod labels through the sums.
	var prom struct {
		ScrapeConfigs []struct {
			JobName        string `yaml:"job_name"`
			RelabelConfigs []struct {
				SourceLabels []string `yaml:"source_labels"`
				TargetLabel  string   `yaml:"target_label"`
				Action       string   `yaml:"action"`
			} `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	pb, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(pb, &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if len(prom.ScrapeConfigs) != 1 || prom.ScrapeConfigs[0].JobName != "btda" {
		t.Fatalf("prometheus.yml: want one scrape job named btda")
	}
	instance := false
	for _, r := range prom.ScrapeConfigs[0].RelabelConfigs {
		if r.Action == "labelmap" || (r.TargetLabel != "" && !strings.HasPrefix(r.TargetLabel, "__") && r.TargetLabel != "instance") {
			t.Errorf("prometheus.yml: relabelling adds label %q%s; the shards' sums drop only instance", r.TargetLabel, r.Action)
		}
		if r.TargetLabel == "instance" && strings.Join(r.SourceLabels, ",") == "__meta_kubernetes_pod_name" {
			instance = true
		}
	}
	if !instance {
		t.Error("prometheus.yml: instance is not the pod name")
	}
}
