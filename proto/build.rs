//! Compiles `proto/` with protox (pure Rust, no system `protoc`), keeps the descriptor set
//! for server reflection, and generates the tonic client and server from it.

use std::{env, fs, path::PathBuf};

const PROTO_FILES: &[&str] = &["proto/payments/v1/transactions.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_set = protox::compile(PROTO_FILES, ["proto"])?;
    fs::write(
        out_dir.join("payments_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptor_set),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptor_set)?;
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
