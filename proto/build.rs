//! Generates prost messages, tonic services and pbjson (proto3 JSON) impls from the .proto files
//! under `proto/`. Descriptors come from protox, so no `protoc` is needed on any machine.

use std::path::PathBuf;

use protox::prost::Message;

const FILES: &[&str] = &[
    "proto/google/v1/profile.proto",
    "proto/types/v1/types.proto",
    "proto/push/v1/push.proto",
    "proto/querier/v1/querier.proto",
    "proto/flamedb/v1/plan.proto",
    "proto/flamedb/v1/wal.proto",
    "proto/opentelemetry/proto/common/v1/common.proto",
    "proto/opentelemetry/proto/resource/v1/resource.proto",
    "proto/opentelemetry/proto/profiles/v1development/profiles.proto",
    "proto/opentelemetry/proto/collector/profiles/v1development/profiles_service.proto",
    "proto/settings/v1/setting.proto",
    "proto/capabilities/v1/feature_flags.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for f in FILES {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(FILES, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = fds.encode_to_vec();
    std::fs::write(out.join("descriptors.bin"), &descriptors)?;

    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(true)
        .compile_fds_with_config(fds, config)?;

    pbjson_build::Builder::new().register_descriptors(&descriptors)?.ignore_unknown_fields().build(&[
        ".google.v1",
        ".types.v1",
        ".push.v1",
        ".querier.v1",
        ".opentelemetry.proto",
        ".settings.v1",
        ".capabilities.v1",
    ])?;
    Ok(())
}
