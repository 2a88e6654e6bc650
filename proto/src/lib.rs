//! The `payments.v1` gRPC contract shared by the processor (server) and the gateway
//! (client): the generated code, and the facts both sides of the hop must agree on, each
//! said once (health names, the request id's metadata key and limit, batch and page
//! sizes, the id rule, time conversions).

pub mod payments {
    pub mod v1 {
        tonic::include_proto!("payments.v1");
    }
}

pub use payments::v1;

pub mod health;
mod item_error;
pub mod limits;
pub mod request_id;
pub mod time;

/// Encoded `FileDescriptorSet` of every proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/payments_descriptor.bin"));
