# The application's scheduled jobs: the app image plus supercronic, a cron
# for containers (foreground, logs to stdout, no root). The crontab ships
# with the application (deploy/crontab in its repository). The release's
# URL and SHA-1 (from its release page) are pinned by the pipeline; the
# build refuses to run without them. Not built by the rehearsal: GitHub's
# release downloads are not reachable from the CI machine.
ARG APP_IMAGE=registry.internal/legacy/app:1.0.0
FROM ${APP_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG SUPERCRONIC_URL
ARG SUPERCRONIC_SHA1SUM
USER 0
RUN test -n "$SUPERCRONIC_URL" && test -n "$SUPERCRONIC_SHA1SUM" \
 && python2.7 -c "import sys, urllib2; open('/usr/local/bin/supercronic', 'wb').write(urllib2.urlopen(sys.argv[1]).read())" "$SUPERCRONIC_URL" \
 && echo "$SUPERCRONIC_SHA1SUM  /usr/local/bin/supercronic" | sha1sum -c - \
 && chmod 0755 /usr/local/bin/supercronic
COPY --chmod=0644 deploy/crontab /etc/legacy-crontab
USER 33:33
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["/usr/local/bin/supercronic", "/etc/legacy-crontab"]
