package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerateProduction: `shoal generate all --env production` on the example's own
// shoal.yml writes the Kubernetes objects — Deployment, Service, a KEDA ScaledObject instead
// of an HPA — with every URL a Secret reference and no secret value in any file.
func TestGenerateProduction(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the shoal binary; skipped with -short")
	}
	bin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	const dbPass, mqPass = "db-s3cret-value", "mq-s3cret-value"
	env := append(os.Environ(), "DATABASE_URL=postgres://bank:"+dbPass+"@postgres:5432/bank", "RABBITMQ_URL=amqp://bank:"+mqPass+"@rabbitmq:5672/")
	for _, args := range [][]string{
		{"validate", "-f", "shoal.yml"},
		{"validate", "-f", "shoal.yml", "--env", "production"},
		{"generate", "all", "--env", "production", "-f", "shoal.yml", "--dir", out},
	} {
		cmd := exec.Command(filepath.Join(bin, "shoal"), args...)
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("shoal %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		if strings.Contains(string(b), dbPass) || strings.Contains(string(b), mqPass) {
			t.Errorf("shoal %s printed a secret:\n%s", strings.Join(args, " "), b)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(out, "kubernetes", name))
		if err != nil {
			t.Fatalf("generate all wrote no kubernetes/%s: %v", name, err)
		}
		return string(b)
	}
	dep := read("deployment.yaml")
	for _, want := range []string{"kind: Deployment", "image: ghcr.io/shoal-sh/bank:latest", "name: DATABASE_URL", "key: DATABASE_URL", "name: RABBITMQ_URL", "key: RABBITMQ_URL", "secretKeyRef:", "name: bank-secrets"} {
		if !strings.Contains(dep, want) {
			t.Errorf("deployment.yaml lacks %q:\n%s", want, dep)
		}
	}
	if svc := read("service.yaml"); !strings.Contains(svc, "kind: Service") {
		t.Errorf("service.yaml:\n%s", svc)
	}
	so := read("scaledobject.yaml")
	if !strings.Contains(so, "kind: ScaledObject") || !strings.Contains(so, "name: bank") {
		t.Errorf("scaledobject.yaml:\n%s", so)
	}
	if !strings.Contains(so, `sum(max by (queue) (job_queue_depth{`) {
		t.Errorf("the ScaledObject does not scale the workers on job_queue_depth:\n%s", so)
	}
	if _, err := os.Stat(filepath.Join(out, "kubernetes", "hpa.yaml")); err == nil {
		t.Error("both an HPA and a KEDA ScaledObject were written; they would fight over the replicas")
	}
	filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), dbPass) || strings.Contains(string(b), mqPass) {
			t.Errorf("%s holds a secret value", path)
		}
		return nil
	})
}
