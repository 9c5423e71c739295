# REHEARSAL STAND-IN for deploy/legacy/nginx/Dockerfile (the nginx image
# cannot be pulled here): Debian 12's nginx 1.22 with the same nginx.conf and
# static files, as the same non-root uid. Build context: deploy/legacy.
ARG BASE=legacy-rehearsal/debian:bookworm
FROM ${BASE}
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 101 nginx-edge && useradd -u 101 -g 101 -M -s /usr/sbin/nologin nginx-edge
COPY --chmod=0644 nginx/nginx.conf /etc/nginx/nginx.conf
COPY --chmod=0644 nginx/static/ /srv/static/
USER 101
EXPOSE 8080 8443
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD ["curl", "-fsS", "http://127.0.0.1:8080/nginx-health"]
CMD ["nginx", "-g", "daemon off;"]
