package zk

import (
	"context"
	"log/slog"
)

// GroupMember is one live member of a group.
type GroupMember struct {
	Name string
	Data []byte
	Stat Stat
}

// GroupView is the group as of one applied change.
type GroupView struct {
	Members []GroupMember // sorted by name
	Stale   bool          // ZooKeeper is unreachable: the view may be old
}

// GroupWatch follows the members (ephemeral children) of a group node.
type GroupWatch struct {
	cache *TreeCache
	views chan GroupView
}

// WatchGroup follows the children of path, with their data, until ctx
// ends. Members join with Register(ctx, c, Join(path, name), data, ...).
func WatchGroup(ctx context.Context, c *Client, path string, logger *slog.Logger) *GroupWatch {
	g := &GroupWatch{
		cache: NewTreeCache(c, []string{path}, CacheOptions{MaxDepth: 1, Data: true, Logger: logger}),
		views: make(chan GroupView, 1),
	}
	go g.cache.Run(ctx)
	go g.run(ctx)
	return g
}

// Views delivers the latest view after every change; a slow reader skips
// intermediate views, never the latest.
func (g *GroupWatch) Views() <-chan GroupView { return g.views }

// Synced is closed after the first complete read.
func (g *GroupWatch) Synced() <-chan struct{} { return g.cache.Synced() }

// View returns the current view.
func (g *GroupWatch) View() GroupView {
	nodes := g.cache.Snapshot()
	v := GroupView{Members: make([]GroupMember, len(nodes)), Stale: g.cache.Stale()}
	for i, n := range nodes {
		v.Members[i] = GroupMember{Name: Base(n.Path), Data: n.Data, Stat: n.Stat}
	}
	return v
}

func (g *GroupWatch) run(ctx context.Context) {
	defer close(g.views)
	for range g.cache.Events() {
		v := g.View()
		select { // keep only the latest view
		case <-g.views:
		default:
		}
		select {
		case g.views <- v:
		case <-ctx.Done():
			return
		}
	}
}
