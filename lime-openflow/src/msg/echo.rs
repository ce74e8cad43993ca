//! `OFPT_ECHO_REQUEST` / `OFPT_ECHO_REPLY` (spec 7.5.2, 7.5.3): arbitrary data.

use bytes::{BufMut, Bytes};

macro_rules! echo {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
        pub struct $name {
            /// Arbitrary payload, echoed back unchanged.
            pub data: Bytes,
        }

        impl $name {
            /// Decodes the body (any length is valid).
            #[must_use]
            pub const fn decode(body: Bytes) -> Self {
                Self { data: body }
            }

            /// Encodes the body.
            pub fn encode<B: BufMut>(&self, dst: &mut B) {
                dst.put_slice(&self.data);
            }
        }
    };
}

echo!(
    /// An `OFPT_ECHO_REQUEST`.
    EchoRequest
);
echo!(
    /// An `OFPT_ECHO_REPLY`.
    EchoReply
);

impl EchoRequest {
    /// The reply carrying the same data (spec 7.5.3).
    #[must_use]
    pub fn reply(&self) -> EchoReply {
        EchoReply {
            data: self.data.clone(),
        }
    }
}
