//! What tests send: a valid ingest request, and ids no other test uses.

use payments_proto::v1 as pb;

pub fn request(id: &str, amount: &str) -> pb::IngestTransactionRequest {
    pb::IngestTransactionRequest {
        transaction_id: id.to_owned(),
        source_account: "acc_user_789".to_owned(),
        destination_account: "acc_merchant_456".to_owned(),
        amount: amount.to_owned(),
        currency: "INR".to_owned(),
    }
}

pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}
