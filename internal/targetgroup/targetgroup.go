// Package targetgroup is Prometheus's target group as zkprom's own
// registration format carries it, {"targets": [...], "labels": {...}},
// and the one rule for the labels a registration may set: register/
// writes by it, discovery reads by it.
package targetgroup

import (
	"fmt"
	"strings"

	"github.com/prometheus/common/model"
)

// Group is one target group (file_sd / http_sd element).
type Group struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// CheckLabel says whether a registration may carry the label name=value:
// a valid name that is not reserved, and a valid UTF-8 value. Reserved are
// job and instance (Prometheus sets them from the scrape config and the
// address) and every name starting with "__": the scrape settings
// (__address__, __scheme__, __metrics_path__, __param_*,
// __scrape_interval__, ...) and the __meta_* labels discovery itself sets.
func CheckLabel(name, value string) error {
	switch {
	case !model.LabelName(name).IsValidLegacy():
		return fmt.Errorf("label name %q is not a valid Prometheus label name", name)
	case name == model.JobLabel || name == model.InstanceLabel || strings.HasPrefix(name, model.ReservedLabelPrefix):
		return fmt.Errorf("label name %q is reserved (job, instance and names starting with __ come from Prometheus and discovery, not from a registration)", name)
	case !model.LabelValue(value).IsValid():
		return fmt.Errorf("value of label %q is not valid UTF-8", name)
	}
	return nil
}
