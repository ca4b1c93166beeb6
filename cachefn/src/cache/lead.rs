//! The cross-process step of a process's leader for `single_flight =
//! "shared"` (see [`crate::shared_flight`] for the protocol): take the
//! key's lease in the shared tier, or wait for the process that holds it.

use cachefn_backends::{Failure, GetOrLease};

use super::{Cache, Flavor, Meta, Plan};
use crate::io::Io;
use crate::shared_flight::{max_wait, Lease};
use crate::stats::Event;

/// What [`Cache::lead_shared`] decided for a process's leader.
pub(crate) enum SharedLead<F: Flavor> {
    /// Another process computed the value meanwhile: its value, bytes and meta.
    Landed(F::Value, Vec<u8>, Meta),
    /// The first read found a value, fresh or not (only when asked to
    /// read first): the caller judges it as its shared read.
    Found(F::Value, Vec<u8>, Meta),
    /// This process holds the lease: compute, store, then [`Lease::release`].
    Holder(Lease),
    /// No lease to be had (tier down, unsupported): compute now.
    Alone,
}

impl Cache {
    /// The cross-process step of a leader: take the key's lease, or wait
    /// until the value lands or the lease is free. `read_first`: the leader
    /// has not read the shared tier yet; the first attempt reads the value
    /// and takes the lease in one call ([`Backend::get_or_lease`]), and a
    /// value it finds is [`SharedLead::Found`]. Otherwise the leader's read
    /// missed.
    pub(crate) async fn lead_shared<F: Flavor>(
        &self,
        io: Io,
        plan: &Plan<'_>,
        mut read_first: bool,
    ) -> SharedLead<F> {
        let Some(shared) = self.inner.shared.clone() else {
            return SharedLead::Alone;
        };
        let stored = self.stored(plan.text);
        let sf = &self.inner.shared_flight;
        let Some(mut attempt) = sf.attempt(&stored, plan.fp) else {
            if read_first {
                if let Some((v, bytes, meta)) = self.shared_value::<F>(io, plan).await {
                    return SharedLead::Found(v, bytes, meta);
                }
            }
            return SharedLead::Alone;
        };
        let mut waited = false;
        loop {
            let seen = attempt.seen();
            if read_first {
                read_first = false;
                let generation = self.inner.local.as_ref().map(|l| l.generation(plan.fp));
                let (key, token) = (&attempt.key, &attempt.token);
                match io
                    .get_or_lease(&*shared, &stored, key, token, attempt.lease_timeout)
                    .await
                {
                    Ok(GetOrLease::Value(bytes)) => {
                        if let Some((v, bytes, meta)) =
                            self.shared_bytes::<F>(plan, bytes, generation)
                        {
                            return SharedLead::Found(v, bytes, meta);
                        }
                        // Not readable as ours (another type): a miss;
                        // take the lease as after any miss.
                        continue;
                    }
                    Ok(GetOrLease::Taken) => {
                        tracing::debug!(target: "cachefn", key = %plan.text,
                            "shared single-flight: this process holds the lease and computes");
                        return SharedLead::Holder(attempt.hold(shared));
                    }
                    Ok(GetOrLease::Held) => {}
                    Err(e) => {
                        self.lease_failed(plan, &e);
                        return SharedLead::Alone;
                    }
                }
            } else {
                let (key, token) = (&attempt.key, &attempt.token);
                match io
                    .lease_acquire(&*shared, key, token, attempt.lease_timeout)
                    .await
                {
                    Ok(true) => {
                        let lease = attempt.hold(shared);
                        // The value may have landed between our miss and the
                        // lease (its holder then released it): do not compute
                        // it a second time.
                        return match self.shared_fresh::<F>(io, plan).await {
                            Some((v, bytes, meta)) => {
                                lease.release(io).await;
                                SharedLead::Landed(v, bytes, meta)
                            }
                            None => {
                                tracing::debug!(target: "cachefn", key = %plan.text,
                                    "shared single-flight: this process holds the lease and computes");
                                SharedLead::Holder(lease)
                            }
                        };
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.lease_failed(plan, &e);
                        return SharedLead::Alone;
                    }
                }
            }
            if !waited {
                waited = true;
                tracing::debug!(target: "cachefn", key = %plan.text,
                    "shared single-flight: another process computes this key; waiting for it");
                // A preload scope's "absent" is out of date from now on.
                self.forget_preloaded(Some(plan.fp));
            }
            attempt.wait(io, seen).await;
            if let Some((v, bytes, meta)) = self.shared_fresh::<F>(io, plan).await {
                return SharedLead::Landed(v, bytes, meta);
            }
            if attempt.gave_up() {
                tracing::warn!(target: "cachefn", key = %crate::log::KeyDigest(plan.text),
                    waited = ?max_wait(attempt.lease_timeout),
                    "shared single-flight: the process holding this key's lease has not stored \
                     a value in time (a long body, or shared bodies waiting on each other); \
                     computing it here too");
                return SharedLead::Alone;
            }
        }
    }

    /// The lease could not be used: count an outage as a shared-tier
    /// failure, log a refusal ("unsupported"); either way, compute.
    fn lease_failed(&self, plan: &Plan<'_>, e: &crate::Error) {
        if e.failure() == Some(Failure::Refused) {
            if self.inner.shared_log.allow() {
                tracing::warn!(target: "cachefn", key = %crate::log::KeyDigest(plan.text), error = %e,
                    prefix = %self.inner.prefix,
                    "single_flight = \"shared\": no lease in the shared tier; computing once per process");
            }
            return;
        }
        self.shared_failed("lease", e);
        if let Some(site) = plan.site {
            site.note(Event::SharedError);
        }
    }
}
