//! The `payments.v1` gRPC contract shared by the processor (server) and the gateway (client).

pub mod payments {
    pub mod v1 {
        tonic::include_proto!("payments.v1");
    }
}

pub use payments::v1;

/// Encoded `FileDescriptorSet` of every proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/payments_descriptor.bin"));
