package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/zkprom/zkprom/internal/prom"
)

// ValidateOptions says how to check a bundle.
type ValidateOptions struct {
	// Promtool is the promtool binary (a path or a name in $PATH);
	// "" means "promtool". "none" skips promtool and uses the built-in
	// checks only.
	Promtool string
	// Vars fill in the placeholders. Empty ConfigDir and RevisionDir are
	// set to the temporary layout.
	Vars Vars
}

// Validation is the outcome of a successful check.
type Validation struct {
	// Method is "promtool" or "builtin".
	Method string
	// Output is promtool's output, or the list of built-in checks made.
	Output string
	// Note says what was not checked (e.g. promtool was not found).
	Note string
}

// ValidationError is a bundle that failed its checks; Output is
// Prometheus's own text (promtool's output) or the built-in check's error.
type ValidationError struct {
	Method string
	Output string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid configuration bundle (%s): %s", e.Method, e.Output)
}

// Validate lays the rendered bundle out in a temporary directory exactly as
// an agent lays it out (DIR/revisions/<rev>/...) and runs
// `promtool check config` over its prometheus.yml; without promtool it
// parses the configuration strictly and makes its own checks.
func Validate(ctx context.Context, b *Bundle, opts ValidateOptions) (*Validation, error) {
	if err := b.Check(); err != nil {
		return nil, &ValidationError{Method: "builtin", Output: err.Error()}
	}
	tmp, err := os.MkdirTemp("", "zkprom-validate-")
	if err != nil {
		return nil, fmt.Errorf("validate bundle: %w", err)
	}
	defer os.RemoveAll(tmp)
	v := opts.Vars
	if v.ConfigDir == "" {
		v.ConfigDir = tmp
	}
	revDir := v.RevisionDir
	if revDir == "" {
		revDir = filepath.Join(tmp, "revisions", "validate")
		v.RevisionDir = revDir
	}
	if v.Member == "" {
		v.Member = "validation"
	}
	r, err := b.Render(v)
	if err != nil {
		return nil, &ValidationError{Method: "builtin", Output: err.Error()}
	}
	if err := r.WriteDir(revDir); err != nil {
		return nil, fmt.Errorf("validate bundle: lay out files in %s: %w", revDir, err)
	}
	return ValidateDir(ctx, revDir, opts.Promtool)
}

// ValidateDir checks the configuration laid out in dir (dir/prometheus.yml).
func ValidateDir(ctx context.Context, dir, promtool string) (*Validation, error) {
	main := filepath.Join(dir, MainFile)
	clean := func(s string) string { return strings.ReplaceAll(s, dir+string(filepath.Separator), "") }
	var note string
	if promtool != "none" {
		res, err := prom.CheckConfig(ctx, promtool, main)
		var ce *prom.CheckError
		switch {
		case err == nil:
			// promtool 2.42 checks bearer-token, credentials and client
			// certificate files but not password_file, ca_file or
			// client_secret_file: check every *_file reference too.
			if err := checkReferencedFiles(dir); err != nil {
				return nil, &ValidationError{Method: "promtool+zkprom", Output: clean(err.Error())}
			}
			return &Validation{Method: "promtool", Output: clean(res.Output)}, nil
		case errors.As(err, &ce):
			return nil, &ValidationError{Method: "promtool", Output: clean(ce.Output)}
		case errors.Is(err, prom.ErrPromtoolNotFound):
			note = "promtool was not found: checked YAML strictly, rule files and referenced files, but not PromQL expressions"
		default:
			return nil, fmt.Errorf("validate bundle: %w", err)
		}
	} else {
		note = "promtool disabled: checked YAML strictly, rule files and referenced files, but not PromQL expressions"
	}
	out, err := builtinCheck(dir)
	if err != nil {
		return nil, &ValidationError{Method: "builtin", Output: clean(err.Error())}
	}
	return &Validation{Method: "builtin", Output: out, Note: note}, nil
}

var topLevelKeys = map[string]bool{
	"global": true, "scrape_configs": true, "scrape_config_files": true, "rule_files": true, "alerting": true,
	"remote_write": true, "remote_read": true, "storage": true, "tracing": true,
}

var ruleGroupKeys = map[string]bool{"name": true, "interval": true, "limit": true, "rules": true, "query_offset": true}
var ruleKeys = map[string]bool{"record": true, "alert": true, "expr": true, "for": true, "keep_firing_for": true, "labels": true, "annotations": true}

// builtinCheck is what zkprom checks itself when promtool is missing.
func builtinCheck(dir string) (string, error) {
	main := filepath.Join(dir, MainFile)
	data, err := os.ReadFile(main)
	if err != nil {
		return "", err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("parse %s: %w", MainFile, err)
	}
	var errs []error
	root := mapping(&doc)
	if root == nil && len(bytes.TrimSpace(data)) > 0 {
		return "", fmt.Errorf("parse %s: not a YAML mapping", MainFile)
	}
	jobs := map[string]bool{}
	var ruleFiles []string
	for k, v := range pairs(root) {
		if !topLevelKeys[k] {
			errs = append(errs, fmt.Errorf("%s: field %s not found in type config.plain", MainFile, k))
		}
		switch k {
		case "scrape_configs":
			for _, sc := range v.Content {
				m := pairs(mapping(sc))
				job := m["job_name"]
				if job == nil || job.Value == "" {
					errs = append(errs, fmt.Errorf("%s line %d: job_name is empty", MainFile, sc.Line))
					continue
				}
				if jobs[job.Value] {
					errs = append(errs, fmt.Errorf("%s: found multiple scrape configs with job name %q", MainFile, job.Value))
				}
				jobs[job.Value] = true
			}
		case "rule_files":
			for _, rf := range v.Content {
				ruleFiles = append(ruleFiles, rf.Value)
			}
		}
	}
	if err := referencedFiles(dir, root); err != nil {
		errs = append(errs, err)
	}
	nRules := 0
	for _, pat := range ruleFiles {
		p := pat
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		matches, err := filepath.Glob(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule_files %q: %w", pat, err))
			continue
		}
		if len(matches) == 0 && !strings.ContainsAny(pat, "*?[") {
			errs = append(errs, fmt.Errorf("%q does not point to an existing file", pat))
		}
		sort.Strings(matches)
		for _, f := range matches {
			n, err := checkRuleFile(f)
			if err != nil {
				errs = append(errs, err)
			}
			nRules += n
		}
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return fmt.Sprintf("%s: %d scrape jobs, %d rule files, %d rules (YAML and references checked)", MainFile, len(jobs), len(ruleFiles), nRules), nil
}

func checkRuleFile(f string) (int, error) {
	data, err := os.ReadFile(f)
	if err != nil {
		return 0, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return 0, fmt.Errorf("%s: %w", f, err)
	}
	var errs []error
	n := 0
	names := map[string]bool{}
	for k, v := range pairs(mapping(&doc)) {
		if k != "groups" {
			errs = append(errs, fmt.Errorf("%s: field %s not found in type rulefmt.RuleGroups", f, k))
			continue
		}
		for _, g := range v.Content {
			gm := pairs(mapping(g))
			for gk := range gm {
				if !ruleGroupKeys[gk] {
					errs = append(errs, fmt.Errorf("%s line %d: field %s not found in type rulefmt.RuleGroup", f, g.Line, gk))
				}
			}
			name := gm["name"]
			if name == nil || name.Value == "" {
				errs = append(errs, fmt.Errorf("%s line %d: group name is empty", f, g.Line))
			} else if names[name.Value] {
				errs = append(errs, fmt.Errorf("%s: groupname: %q is repeated in the same file", f, name.Value))
			} else {
				names[name.Value] = true
			}
			if rules := gm["rules"]; rules != nil {
				for _, r := range rules.Content {
					rm := pairs(mapping(r))
					for rk := range rm {
						if !ruleKeys[rk] {
							errs = append(errs, fmt.Errorf("%s line %d: field %s not found in type rulefmt.Rule", f, r.Line, rk))
						}
					}
					if (rm["record"] == nil) == (rm["alert"] == nil) {
						errs = append(errs, fmt.Errorf("%s line %d: one of 'record' or 'alert' must be set", f, r.Line))
					}
					if e := rm["expr"]; e == nil || strings.TrimSpace(e.Value) == "" {
						errs = append(errs, fmt.Errorf("%s line %d: field 'expr' must be set in rule", f, r.Line))
					}
					n++
				}
			}
		}
	}
	return n, errors.Join(errs...)
}

func mapping(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	return n
}

func pairs(m *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if m == nil {
		return out
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		out[m.Content[i].Value] = m.Content[i+1]
	}
	return out
}

func walkNodes(n *yaml.Node, f func(key string, val *yaml.Node)) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			f(n.Content[i].Value, n.Content[i+1])
			walkNodes(n.Content[i+1], f)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			walkNodes(c, f)
		}
	}
}

// checkReferencedFiles checks that every file named by a *_file key of
// prometheus.yml exists (relative paths resolve against its directory).
func checkReferencedFiles(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, MainFile))
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parse %s: %w", MainFile, err)
	}
	return referencedFiles(dir, mapping(&doc))
}

func referencedFiles(dir string, root *yaml.Node) error {
	var errs []error
	walkNodes(root, func(key string, val *yaml.Node) {
		if strings.HasSuffix(key, "_file") && val.Kind == yaml.ScalarNode && val.Value != "" {
			p := val.Value
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			if _, err := os.Stat(p); err != nil {
				errs = append(errs, fmt.Errorf("%s line %d: %s %q does not point to an existing file on this host", MainFile, val.Line, key, val.Value))
			}
		}
	})
	return errors.Join(errs...)
}
