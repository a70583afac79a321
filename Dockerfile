# Roster: one build stage, a slim non-root runtime with the data directory as a volume.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# libxml2-dev, libxmlsec1-dev (with libssl-dev) and libclang-dev: the SAML crate (samael) binds
# libxmlsec1 with bindgen at build time.
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config make perl libxml2-dev libxmlsec1-dev libclang-dev && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
# SQLite build flags (see the file): the image gets the same SQLite as the benchmarked build.
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked && strip target/release/roster

FROM debian:bookworm-slim
# libxmlsec1-openssl (with libxmlsec1, libxml2, libssl3): SAML signatures are verified through it.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libxmlsec1-openssl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/roster roster \
    && mkdir -p /var/lib/roster/data && chown -R roster /var/lib/roster
COPY --from=build /src/target/release/roster /usr/local/bin/roster
USER roster
WORKDIR /var/lib/roster
ENV ROSTER_BIND=0.0.0.0:8080 ROSTER_DATA_DIR=/var/lib/roster/data RUST_LOG=info
VOLUME ["/var/lib/roster/data"]
EXPOSE 8080
ENTRYPOINT ["roster"]
CMD ["serve"]
