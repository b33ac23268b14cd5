//! The semantic tier's callouts: embedding the key text, setting the collection up once per
//! worker, the top-1 query, and storing an answer with its vector; each answer decides the next
//! call, a hit, or going on without the cache (fail open, logged and counted).

use std::rc::Rc;

use aigw_shared::plugin::{Ctx, Next, Reply};

use super::{Call, Filter, Phase, Verdict};
use crate::entry::Entry;
use crate::store::{Record, StoreCall};
use crate::{embed, metric};

impl Filter {
    pub(super) fn send_store(&self, cx: &mut Ctx<'_, Call>, call: &StoreCall, what: Call) -> bool {
        let Some(semantic) = &self.config.semantic else {
            return false;
        };
        match cx.http_call(
            &semantic.store.upstream,
            &semantic.store.request(call),
            what,
        ) {
            Ok(_) => true,
            Err(e) => {
                let m = if what == Call::Query {
                    metric::ERR_QUERY
                } else {
                    metric::ERR_STORE
                };
                self.failed(cx.host, m, "calling the vector store", &e.to_string());
                false
            }
        }
    }

    /// With a vector in hand: set the collection up if needed, then `then` (query or upsert).
    pub(super) fn next_store_step(&mut self, cx: &mut Ctx<'_, Call>, then: Call) -> bool {
        let Some(semantic) = self.config.semantic.as_ref() else {
            return false;
        };
        let Some(vector) = self.vector.as_deref() else {
            return false;
        };
        let backend = semantic.store.backend();
        let handle = self.state.handle.borrow().clone();
        let Some(handle) = handle else {
            let call = backend.ensure(vector.len());
            return self.send_store(cx, &call, Call::Ensure);
        };
        let Some(lookup) = &self.lookup else {
            return false;
        };
        let call = match then {
            Call::Query => {
                let now = Self::now_ns(cx.host) / 1_000_000_000;
                backend.query(&handle, vector, &lookup.partition, now)
            }
            _ => {
                let Some(document) = self.pending_document.as_deref() else {
                    return false;
                };
                let expires = Self::now_ns(cx.host) / 1_000_000_000 + self.config.ttl_seconds;
                let record = Record {
                    id: &lookup.exact,
                    vector,
                    partition: &lookup.partition,
                    expires,
                    document,
                };
                backend.upsert(&handle, &record)
            }
        };
        self.send_store(cx, &call, then)
    }

    /// A callout of the semantic tier answered: the next call, a hit, or go on (fail open).
    pub(super) fn semantic_reply(
        &mut self,
        cx: &mut Ctx<'_, Call>,
        call: Call,
        reply: &Reply,
    ) -> Next {
        if self.phase == Phase::Answered {
            return Next::Hold;
        }
        let host = cx.host;
        let (status, body) = match reply.http() {
            Some(r) => (r.status, r.body.as_slice()),
            None => (None, &[][..]),
        };
        let Some(semantic) = self.config.semantic.as_ref() else {
            return Next::Resume;
        };
        let config = Rc::clone(&self.config);
        let looking = self.phase == Phase::Looking;
        let backend = semantic.store.backend();
        match call {
            Call::Embed => match embed::vector(status, body) {
                Ok(v) => {
                    self.vector = Some(v);
                    if self.look && self.next_store_step(cx, Call::Query) {
                        return Next::Hold;
                    }
                }
                Err(why) => self.failed(host, metric::ERR_EMBEDDING, "the embedding", &why),
            },
            Call::Ensure => match backend.ensured(status.unwrap_or(0), body) {
                Ok(handle) => {
                    *self.state.handle.borrow_mut() = Some(handle);
                    let then = if looking { Call::Query } else { Call::Upsert };
                    if self.next_store_step(cx, then) {
                        return Next::Hold;
                    }
                }
                Err(why) => self.failed(host, metric::ERR_SETUP, "the vector store set-up", &why),
            },
            Call::Query => match backend.found(status.unwrap_or(0), body) {
                Ok(Some(found)) => {
                    self.similarity = Some(found.similarity);
                    // For calibrating the threshold on real traffic: the nearest answer's
                    // similarity in percent, hit or not.
                    let percent = (found.similarity.clamp(0.0, 1.0) * 100.0).round();
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let percent = percent as u64;
                    self.state.metrics.observe(host, metric::NEAREST, percent);
                    if found.similarity >= config.semantic.as_ref().map_or(1.0, |s| s.threshold) {
                        if let Some(entry) = Entry::from_json(found.document.as_bytes()) {
                            self.answer(host, &entry, "semantic", found.similarity);
                            if self.phase == Phase::Answered {
                                return Next::Hold;
                            }
                        } else {
                            self.failed(
                                host,
                                metric::ERR_QUERY,
                                "the vector query",
                                "the stored document is not a cached answer",
                            );
                        }
                    }
                }
                Ok(None) => {}
                Err(why) => {
                    // The collection may have gone: set it up again next time.
                    *self.state.handle.borrow_mut() = None;
                    self.failed(host, metric::ERR_QUERY, "the vector query", &why);
                }
            },
            Call::Upsert => match backend.upserted(status.unwrap_or(0), body) {
                Ok(()) => {}
                Err(why) => {
                    *self.state.handle.borrow_mut() = None;
                    self.failed(host, metric::ERR_STORE, "the vector store upsert", &why);
                }
            },
            // The exact tier's Redis calls are answered in `filter/redis.rs`.
            Call::ExactGet | Call::ExactSet => return Next::Hold,
        }
        if looking {
            let verdict = if self.look {
                Verdict::Miss
            } else {
                Verdict::Bypass
            };
            self.forward(host, verdict);
        }
        Next::Resume
    }
}
