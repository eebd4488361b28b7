package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/lintel-edge/lintel"

// TestTopLevelLayout keeps the repository's top level to what DESIGN.md
// lists, so things land where a newcomer looks for them.
func TestTopLevelLayout(t *testing.T) {
	allowed := []string{".ci", ".git", ".gitignore", "LICENSE", "Makefile", "README.md", "cmd", "configs", "docs",
		"drivers", "edge", "go.mod", "go.sum", "packaging", "sync", "bin", "dist"}
	ents, err := os.ReadDir("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		// Build output that .gitignore keeps out of commits.
		if strings.HasSuffix(e.Name(), ".test") || strings.HasSuffix(e.Name(), ".prof") || e.Name() == "lintel" {
			continue
		}
		if !slices.Contains(allowed, e.Name()) {
			t.Errorf("unexpected top-level entry %q: put it under one of cmd, edge, drivers, sync, configs, packaging, docs", e.Name())
		}
	}
}

// TestNoGoFilesInSyncRoot: a package named sync would shadow the standard
// library's in every file importing both.
func TestNoGoFilesInSyncRoot(t *testing.T) {
	files, _ := filepath.Glob("../../sync/*.go")
	if len(files) > 0 {
		t.Errorf("sync/ must hold only subpackages, found %v", files)
	}
}

type pkgInfo struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Dir        string
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkgInfo
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportDirection: edge never imports drivers or sync; drivers and
// sinks import edge, not each other.
func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			irel := strings.TrimPrefix(imp, module+"/")
			switch {
			case strings.HasPrefix(rel, "edge") && (strings.HasPrefix(irel, "drivers") || strings.HasPrefix(irel, "sync") || strings.HasPrefix(irel, "cmd")):
				t.Errorf("%s imports %s: edge must not depend on drivers, sync or cmd", rel, irel)
			case strings.HasPrefix(rel, "drivers/") && !strings.HasPrefix(rel, "drivers/all") && strings.HasPrefix(irel, "sync"):
				t.Errorf("%s imports %s: drivers must not depend on sinks", rel, irel)
			case strings.HasPrefix(rel, "sync/") && !strings.HasPrefix(rel, "sync/all") && strings.HasPrefix(irel, "drivers"):
				t.Errorf("%s imports %s: sinks must not depend on drivers", rel, irel)
			}
		}
	}
}

// TestPackageDocs: every package says what it is for, once.
func TestPackageDocs(t *testing.T) {
	stdlib := []string{"sync", "log", "errors", "time", "http", "context", "rand", "json", "os", "io", "net", "strings", "bytes", "fmt", "sort", "flag"}
	for _, p := range listPackages(t) {
		if p.Doc == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
		if slices.Contains(stdlib, p.Name) {
			t.Errorf("%s is named like the standard library's %q", p.ImportPath, p.Name)
		}
	}
}

// TestDriverFolders: each driver carries an installer README and a sample
// config (loaded by TestCheckShippedConfigs) and is linked in.
func TestDriverFolders(t *testing.T) {
	ents, _ := os.ReadDir("../../drivers")
	for _, e := range ents {
		if !e.IsDir() || e.Name() == "all" {
			continue
		}
		for _, f := range []string{"README.md", "sample.yaml"} {
			if _, err := os.Stat(filepath.Join("../../drivers", e.Name(), f)); err != nil {
				t.Errorf("drivers/%s lacks %s", e.Name(), f)
			}
		}
		if _, err := os.Stat(filepath.Join("../../drivers/all", e.Name()+".go")); err != nil {
			t.Errorf("drivers/%s is not linked in drivers/all", e.Name())
		}
	}
}
