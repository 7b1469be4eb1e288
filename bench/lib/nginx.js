// nginx configurations: the static upstream and the reverse proxy under comparison.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function common(dir, name) {
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, `${name}-${sub}`), { recursive: true });
  return `worker_processes 1;
daemon off;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 4096; }
`;
}

function temps(dir, name) {
  return `  client_body_temp_path ${join(dir, `${name}-body`)};
  proxy_temp_path ${join(dir, `${name}-proxy`)};
  fastcgi_temp_path ${join(dir, `${name}-fastcgi`)};
  uwsgi_temp_path ${join(dir, `${name}-uwsgi`)};
  scgi_temp_path ${join(dir, `${name}-scgi`)};
`;
}

/** Static upstream: /bench/small (13 B, from memory) and /bench/16k (a 16 KiB file, cached fd). */
export function writeUpstreamConf(dir, port) {
  const www = join(dir, 'www', 'bench');
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, '16k'), Buffer.alloc(16 * 1024, 'ficus-bench '));
  const file = join(dir, 'upstream.conf');
  writeFileSync(
    file,
    `${common(dir, 'upstream')}http {
  access_log off;
${temps(dir, 'upstream')}  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  open_file_cache max=16 inactive=300s;
  open_file_cache_valid 3600s;
  default_type text/plain;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${join(dir, 'www')};
    location = /bench/small { return 200 "hello, world\\n"; }
  }
}
`,
  );
  return file;
}

/**
 * The reverse proxy: one worker, keep-alive upstream pools, the same forwarding headers ficus
 * sets, a buffered access log (ficus's pino log is buffered too), streamed uploads.
 */
export function writeProxyConf(dir, { port, app, sink }) {
  const file = join(dir, 'proxy.conf');
  writeFileSync(
    file,
    `${common(dir, 'proxy')}http {
  log_format bench '$request_id $remote_addr "$request" $status $body_bytes_sent $request_time $upstream_response_time';
  access_log ${join(dir, 'nginx-access.log')} bench buffer=64k flush=1s;
${temps(dir, 'proxy')}  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  upstream app { server ${app}; keepalive 128; keepalive_requests 1000000; keepalive_timeout 60s; }
  upstream sink { server ${sink}; keepalive 8; }
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host $http_host;
  proxy_set_header X-Request-Id $request_id;
  proxy_set_header X-Forwarded-For $remote_addr;
  proxy_set_header X-Forwarded-Proto $scheme;
  proxy_set_header X-Forwarded-Host $http_host;
  proxy_set_header Forwarded "for=$remote_addr;host=$http_host;proto=$scheme";
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location /bench/ { proxy_pass http://app; }
    location /upload { proxy_pass http://sink; client_max_body_size 0; proxy_request_buffering off; }
    location / { return 404; }
  }
}
`,
  );
  return file;
}
