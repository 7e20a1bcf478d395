package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The demo's Alertmanager, off the port of a packaged one (9093), and the
// webhook in the demo that prints what it is sent.
const (
	alertmanagerAddr = "127.0.0.1:9193"
	webhookAddr      = "127.0.0.1:9194"
	alertmanagerBin  = "prometheus-alertmanager" // Debian's name
)

// leaderAlerting is the leader overlay's alerting section: only the HA
// pair's leader sends alerts, so each fires once.
const leaderAlerting = `alerting:
  alertmanagers: [{static_configs: [{targets: ['` + alertmanagerAddr + `']}]}]
`

// demoRules has an alert that always fires: it shows which Prometheus
// sends alerts (its replica label) before and after a hand-over.
const demoRules = `groups:
  - name: demo
    rules:
      - alert: DemoAlertFromLeader
        expr: vector(1)
        labels: {severity: info}
        annotations:
          summary: Always firing; only the HA leader sends it (its alerting section comes from leader.yml).
`

// startAlertmanager runs Debian's Alertmanager, which sends every
// notification to the demo's webhook; the webhook prints them.
func (d *demo) startAlertmanager() error {
	bin, err := exec.LookPath(alertmanagerBin)
	if err != nil {
		return fmt.Errorf("%s is not installed (apt-get install prometheus-alertmanager; make demo does it): %w", alertmanagerBin, err)
	}
	l, err := net.Listen("tcp", webhookAddr)
	if err != nil {
		return fmt.Errorf("the demo needs %s, which is in use: %w", webhookAddr, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(printNotification)}
	go srv.Serve(l)
	d.servers = append(d.servers, srv)

	dir := filepath.Join(d.dir, "alertmanager")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := `route: {receiver: demo, group_by: [alertname, replica], group_wait: 1s, group_interval: 5s, repeat_interval: 1h}
receivers:
  - name: demo
    webhook_configs: [{url: 'http://` + webhookAddr + `/', send_resolved: true}]
`
	cfgFile := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(d.dir, "alertmanager.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+alertmanagerAddr, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", alertmanagerBin, err)
	}
	d.others = append(d.others, cmd)
	return nil
}

// printNotification prints one Alertmanager webhook notification: which
// alerts fire or resolved, and which Prometheus sent them.
func printNotification(w http.ResponseWriter, r *http.Request) {
	var n struct {
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, a := range n.Alerts {
		var extra []string
		for _, k := range []string{"severity", "server", "ha_role"} {
			if v := a.Labels[k]; v != "" {
				extra = append(extra, k+"="+v)
			}
		}
		fmt.Printf("%s  alertmanager: %s %s, sent by %s (%s)\n", time.Now().Format("15:04:05"),
			a.Labels["alertname"], a.Status, a.Labels["replica"], strings.Join(extra, " "))
	}
}
