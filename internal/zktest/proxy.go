package zktest

import (
	"net"
	"sync"
)

// Proxy is a loopback TCP proxy to one address. A test can stall it (bytes
// stop flowing both ways, connections stay open: the peer sees silence) or
// cut it (every connection is closed and new ones are refused), at once or
// after the server has sent so many more bytes (in the middle of a frame).
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
	cut     bool
	conns   map[net.Conn]struct{}
	closed  bool
	budget  int64 // bytes from the server until then happens
	then    afterBudget
	served  int64 // bytes from the server passed on, in all
	opened  int64 // connections accepted and passed on
}

type afterBudget int

const (
	afterNothing afterBudget = iota
	afterStall               // Stall
	afterDrop                // close every connection; new ones are accepted
)

// NewProxy listens on a free 127.0.0.1 port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stall holds every byte until Resume.
func (p *Proxy) Stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Cut closes every connection and refuses new ones until Resume.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Drop closes every connection now; new ones are accepted, so a client
// can reconnect.
func (p *Proxy) Drop() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// StallAfter lets n more bytes come from the server, then stalls (the
// rest waits for Resume).
func (p *Proxy) StallAfter(n int64) { p.after(n, afterStall) }

// DropAfter lets n more bytes come from the server, then closes every
// connection; new connections are accepted, so a client can reconnect.
func (p *Proxy) DropAfter(n int64) { p.after(n, afterDrop) }

func (p *Proxy) after(n int64, then afterBudget) {
	p.mu.Lock()
	p.budget, p.then = n, then
	p.mu.Unlock()
}

// Served is how many bytes from the server the proxy has passed on so
// far: a test measures an exchange with it, then drops at every offset
// of it (DropAfter).
func (p *Proxy) Served() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}

// Opened is how many connections the proxy has accepted (a client's
// reconnects).
func (p *Proxy) Opened() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opened
}

// Stalled says whether bytes are held.
func (p *Proxy) Stalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalled
}

// Resume undoes Stall and Cut.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.stalled, p.cut = false, false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.ln.Close()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.cut || p.closed
		if !refuse {
			p.opened++
		}
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client, false) }()
	go func() { defer wg.Done(); p.pipe(client, server, true) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// pipe copies src to dst; fromServer counts the bytes against a budget.
func (p *Proxy) pipe(dst, src net.Conn, fromServer bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		for chunk := buf[:n]; len(chunk) > 0; {
			p.mu.Lock()
			for p.stalled && !p.closed && !p.cut {
				p.cond.Wait()
			}
			if p.closed || p.cut {
				p.mu.Unlock()
				return
			}
			part, then := chunk, afterNothing
			if fromServer && p.then != afterNothing {
				if int64(len(part)) >= p.budget {
					part, then, p.then = part[:p.budget], p.then, afterNothing
				}
				p.budget -= int64(len(part))
			}
			if fromServer {
				p.served += int64(len(part))
			}
			if then == afterStall {
				p.stalled = true // the rest of chunk waits for Resume
			}
			p.mu.Unlock()
			if _, werr := dst.Write(part); werr != nil {
				return
			}
			chunk = chunk[len(part):]
			if then == afterDrop {
				p.mu.Lock()
				for c := range p.conns {
					c.Close()
				}
				p.mu.Unlock()
				return
			}
		}
		if err != nil {
			return
		}
	}
}
