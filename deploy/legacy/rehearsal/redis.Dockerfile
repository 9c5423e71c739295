# REHEARSAL STAND-IN for deploy/legacy/redis/Dockerfile (redis:7.2-alpine
# cannot be pulled here): Debian 12's Redis 7.0 and Sentinel, with the same
# configuration files and entrypoint. Build context: deploy/legacy.
ARG BASE=legacy-rehearsal/debian:bookworm
FROM ${BASE}
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-sentinel \
 && rm -rf /var/lib/apt/lists/* \
 && chmod 0755 /etc/redis && mkdir -p /data && chown 999:999 /data
COPY --chmod=0644 redis/redis.conf redis/sentinel.conf /etc/redis/
COPY --chmod=0755 redis/entrypoint.sh /usr/local/bin/legacy-entrypoint.sh
USER 999:999
EXPOSE 6379 26379
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD ["/usr/local/bin/legacy-entrypoint.sh", "health"]
ENTRYPOINT ["/usr/local/bin/legacy-entrypoint.sh"]
CMD ["redis"]
