package prom

import "context"

// BuildInfo is the part of /api/v1/status/buildinfo the agent shows.
type BuildInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision"`
}

// BuildInfo reads /api/v1/status/buildinfo.
func (c *Client) BuildInfo(ctx context.Context) (BuildInfo, error) {
	var bi BuildInfo
	err := c.getAPI(ctx, "/api/v1/status/buildinfo", &bi)
	return bi, err
}
