package benchrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchproc"
)

// nginxConf is one reverse proxy of the pair: one worker, no master process
// (so the process's accounting is the worker's), no access log, HTTP/1.1
// keep-alive connections to its upstream, as a tuned sidecar would have.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	keepalive_requests 1000000;
	upstream next {
		server %[3]s;
		keepalive 64;
	}
	server {
		listen %[2]s;
		location / {
			proxy_pass http://next;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`

// startNginxPair starts client-side nginx A in front of service-side nginx
// B in front of the echo service, and returns A's address.
func (e *env) startNginxPair(ctx context.Context, s *setup, bin string) (string, error) {
	front, err := benchproc.FreeAddr()
	if err != nil {
		return "", err
	}
	back, err := benchproc.FreeAddr()
	if err != nil {
		return "", err
	}
	// Start B first so A's upstream is there.
	for _, n := range []struct{ name, listen, upstream string }{
		{"nginx-b", back, e.echoHTTP},
		{"nginx-a", front, back},
	} {
		prefix := filepath.Join(e.dir, n.name)
		if err := os.MkdirAll(prefix, 0o755); err != nil {
			return "", err
		}
		conf := filepath.Join(prefix, "nginx.conf")
		if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, prefix, n.listen, n.upstream), 0o644); err != nil {
			return "", err
		}
		p, err := benchproc.Start(e.dir, n.name, bin, "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log"))
		if err != nil {
			return "", err
		}
		s.components = append(s.components, p)
		if err := p.WaitReady(ctx, 10*time.Second, benchproc.TCPReady(n.listen)); err != nil {
			return "", err
		}
	}
	return front, nil
}
