# asdr in a container: `docker build -t asdr .`, then `docker run --rm asdr --help`.
# The build stage compiles the release binary; the image carries only the stripped binary, CA
# certificates (AWS over HTTPS) and OpenSSH's client (the ssh transport), run as a non-root user.
FROM rust:1.94-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p asdr \
    && strip target/release/asdr

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /work asdr
COPY --from=build /src/target/release/asdr /usr/local/bin/asdr
USER 10001
# The policy goes here (with its templates); asdr keeps its journals and local lock in .asdr/
# beside it, which should be a volume so that a killed apply is resumed by the next one.
WORKDIR /work
ENTRYPOINT ["asdr"]
CMD ["--help"]
