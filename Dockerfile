# The prom-tenant image, the Caddy way: xcaddy in the official builder image builds this
# tree into Caddy, and the binary goes into an image with nothing else in it.
#
#	v=$(sed -n 's/^appVersion: *"\(.*\)"/\1/p' deploy/helm/prom-tenant/Chart.yaml)
#	docker build --build-arg VERSION="$v" --build-arg REVISION="$(git describe --always --dirty)" \
#		-t ghcr.io/prom-tenant/caddy-prom-tenant:"$v" .
#
# VERSION is the tag, the chart's appVersion (the chart pulls that tag by default; make
# image reads it from Chart.yaml); REVISION is the commit.
#
# make image builds the same image without a container engine (tools/image); e2e's
# image test checks that this file's final stage and that image agree.
FROM caddy:2.11.9-builder AS builder

ARG VERSION=dev
ARG REVISION=unknown
COPY . /src
# The module is not published, and the Go module proxy answers 403 for its path: '|' falls
# through to an empty file proxy on any error, after which --with's replace to /src wins
# (the Makefile's xcaddy target does the same). XCADDY_SETCAP=0: the builder image would
# give the binary the file capability cap_net_bind_service, and a binary with file
# capabilities does not start in a container that drops all capabilities (as
# deploy/kubernetes does); bind ports above 1023. GOTOOLCHAIN=auto: the golang images
# pin their own Go (local), which may be older than go.mod asks for. The quoting: the shell
# keeps the single quotes for xcaddy's shell-style split, and the go command splits
# -ldflags again, keeping the double-quoted -X value with its space whole.
RUN mkdir -p /tmp/empty-goproxy && \
	GOPROXY="https://proxy.golang.org|file:///tmp/empty-goproxy" GOTOOLCHAIN=auto CGO_ENABLED=0 XCADDY_SETCAP=0 \
	XCADDY_GO_BUILD_FLAGS="-trimpath -buildvcs=false -ldflags='-s -w -X \"github.com/caddyserver/caddy/v2.CustomVersion=prom-tenant/${VERSION} (${REVISION})\"'" \
	xcaddy build v2.11.9 --with github.com/prom-tenant/caddy-prom-tenant=/src --output /usr/bin/caddy

# What the final image holds besides the binary: nobody, the mount points of the
# Deployment (the Caddyfile, the tenants' manifests) and a /tmp anyone may write to.
RUN mkdir -p /rootfs/etc/caddy /rootfs/etc/prom-tenant/tenants /rootfs/tmp && \
	chmod 1777 /rootfs/tmp && \
	echo 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' >/rootfs/etc/passwd && \
	echo 'nogroup:x:65534:' >/rootfs/etc/group

# scratch rather than caddy:2.11.9: no shell or package manager to exploit or to scan, no
# root-owned /config and /data for a non-root user to trip over, and the same files make
# image can assemble here without a registry.
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
COPY --from=builder /rootfs/ /
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /usr/bin/caddy /usr/bin/caddy

LABEL org.opencontainers.image.title="prom-tenant" \
	org.opencontainers.image.description="Caddy with the prom-tenant modules: a multi-tenant proxy for Prometheus" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${REVISION}" \
	org.opencontainers.image.source="https://github.com/prom-tenant/caddy-prom-tenant" \
	org.opencontainers.image.licenses="Apache-2.0"

# Caddy autosaves its config under XDG_CONFIG_HOME and keeps certificates and the
# copier's state under XDG_DATA_HOME: under /tmp, the one writable place when the root
# filesystem is read-only (the Deployment mounts an emptyDir there). Mount a volume and
# point XDG_DATA_HOME at it to keep them across containers.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	XDG_CONFIG_HOME=/tmp/config \
	XDG_DATA_HOME=/tmp/data

# deploy/kubernetes's Caddyfile: the proxy, and the probes' listener.
EXPOSE 9091 8080
USER 65534:65534
ENTRYPOINT ["caddy"]
CMD ["run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
