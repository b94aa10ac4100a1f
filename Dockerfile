# balena-migrate, the operator side: the CLI with everything it needs to build stage2
# initramfs images for amd64, arm64 and armhf hosts.
#   docker build -t balena-migrate .
#   docker run --rm -it -v "$PWD:/work" -v "$HOME/.ssh:/root/.ssh:ro" -w /work balena-migrate check -i inventory.yml
FROM node:20-bookworm-slim

# busybox-static is the userland of stage2. The native one goes to /bin/busybox; the arm
# builds are unpacked (not installed: the package is not multi-arch co-installable) into
# /usr/lib/balena-migrate/busybox/<arch>/busybox.
RUN set -eux; \
    dpkg --add-architecture arm64; dpkg --add-architecture armhf; \
    apt-get update; \
    apt-get install -y --no-install-recommends busybox-static openssh-client xz-utils ca-certificates; \
    mkdir -p /usr/lib/balena-migrate/busybox/amd64 /tmp/bb; cd /tmp/bb; \
    cp /bin/busybox /usr/lib/balena-migrate/busybox/amd64/busybox; \
    for arch in arm64 armhf; do \
      apt-get download "busybox-static:${arch}"; \
      dpkg-deb -x busybox-static_*_"${arch}".deb "/tmp/bb/${arch}"; \
      mkdir -p "/usr/lib/balena-migrate/busybox/${arch}"; \
      cp "/tmp/bb/${arch}/bin/busybox" "/usr/lib/balena-migrate/busybox/${arch}/busybox"; \
    done; \
    rm -rf /tmp/bb /var/lib/apt/lists/*

WORKDIR /opt/balena-migrate
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY orchestrator ./orchestrator
COPY remote-payload ./remote-payload
COPY stage2 ./stage2
COPY inventory ./inventory
COPY tsconfig.json ./

ENV NODE_ENV=production
ENTRYPOINT ["node", "/opt/balena-migrate/bin/balena-migrate.js"]
CMD ["--help"]
