//! What the local tier and single-flight hold for a value: typed
//! ([`Timed`], [`Typed`]: a hit clones it, decoding nothing) or encoded
//! ([`Encoded`]: values stored through the low-level API), and what a
//! flight's leader hands its waiters ([`Payload`]).

use std::sync::Arc;

use cachefn_backends::LocalValue;
use serde::{de::DeserializeOwned, Serialize};

use crate::codec;
use crate::freshness::Meta;
use crate::Error;

/// What a leader hands its waiters: the value as the local tier keeps it.
pub(crate) type Payload = Arc<dyn LocalValue>;

/// A memoized function's value in the local tier: typed (a hit clones it,
/// decoding nothing), with its [`Meta`]. The value comes first, so that a
/// small value shares the slot's first cache line with the slot's header
/// and a hit that needs no meta reads one line.
#[repr(C)]
pub(crate) struct Timed<T> {
    pub(crate) value: T,
    pub(crate) meta: Meta,
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> LocalValue for Timed<T> {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>, Error> {
        codec::encode_bound(
            &self.value,
            self.meta.fresh_until_unix,
            self.meta.run_ms,
            codec::Binding::to(codec::IN_PROCESS),
        )
    }
    fn size_hint(&self) -> usize {
        crate::weigh::heap_size(&self.value)
    }
}

/// A typed value in the local tier (and in a flight's payload): a hit of
/// the same type clones it, decoding nothing.
pub(crate) struct Typed<T>(pub(crate) T);

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> LocalValue for Typed<T> {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>, Error> {
        codec::encode_bound(&self.0, 0, 0, codec::Binding::to(codec::IN_PROCESS))
    }
    fn size_hint(&self) -> usize {
        crate::weigh::heap_size(&self.0)
    }
}

/// Encoded bytes in the local tier (values stored through the low-level API).
pub(crate) struct Encoded(pub(crate) Vec<u8>);

impl LocalValue for Encoded {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>, Error> {
        Ok(self.0.clone())
    }
    fn size_hint(&self) -> usize {
        self.0.capacity()
    }
}
