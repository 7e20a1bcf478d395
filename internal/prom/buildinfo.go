package prom

import (
	"context"
	"fmt"
)

// BuildInfo is the part of /api/v1/status/buildinfo the agent shows.
type BuildInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision"`
}

// BuildInfo reads /api/v1/status/buildinfo.
func (c *Client) BuildInfo(ctx context.Context) (BuildInfo, error) {
	var out struct {
		Status string    `json:"status"`
		Data   BuildInfo `json:"data"`
		Error  string    `json:"error"`
	}
	if err := c.getJSON(ctx, "/api/v1/status/buildinfo", &out); err != nil {
		return BuildInfo{}, err
	}
	if out.Status != "success" {
		return BuildInfo{}, fmt.Errorf("GET %s: status %q: %s", c.endpoint("/api/v1/status/buildinfo"), out.Status, out.Error)
	}
	return out.Data, nil
}
