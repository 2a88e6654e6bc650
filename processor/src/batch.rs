//! A micro-batcher: many concurrent callers each hand in one item and await their own
//! result, while a few workers take whatever is queued (up to a maximum) and serve it
//! with one round trip. Nothing waits for a batch to fill: under light load a batch is
//! one item; under heavy load batches grow while earlier ones are in flight.

use std::{future::Future, sync::Arc};

use tokio::sync::{Mutex, mpsc, oneshot};

type Job<I, O> = (I, oneshot::Sender<O>);

pub struct Batcher<I, O> {
    queue: mpsc::Sender<Job<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts `workers` tasks serving batches of at most `max_batch` with `serve`, which
    /// must return one output per input, in order. The workers stop once every
    /// `Batcher` clone is dropped and the queue is empty.
    pub fn start<F, Fut>(max_batch: usize, workers: usize, serve: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send,
    {
        let (queue, receiver) = mpsc::channel::<Job<I, O>>(max_batch * workers * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..workers {
            let receiver = receiver.clone();
            let serve = serve.clone();
            tokio::spawn(async move {
                loop {
                    let mut jobs = Vec::with_capacity(max_batch);
                    if receiver.lock().await.recv_many(&mut jobs, max_batch).await == 0 {
                        return;
                    }
                    let (inputs, replies): (Vec<I>, Vec<oneshot::Sender<O>>) =
                        jobs.into_iter().unzip();
                    let outputs = serve(inputs).await;
                    for (reply, output) in replies.into_iter().zip(outputs) {
                        // The caller may have gone; its work is done all the same.
                        let _ = reply.send(output);
                    }
                }
            });
        }
        Self { queue }
    }

    /// Hands in one item and waits for its result; `None` if the workers are gone.
    pub async fn call(&self, input: I) -> Option<O> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((input, reply)).await.ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_caller_gets_its_own_result_and_batches_form_under_load() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let doubler = Batcher::start(16, 2, move |inputs: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().map(|mut s| s.push(inputs.len())).ok();
                tokio::task::yield_now().await;
                inputs.into_iter().map(|n| n * 2).collect()
            }
        });
        let calls: Vec<_> = (0..200u32)
            .map(|n| {
                let doubler = doubler.clone();
                tokio::spawn(async move { (n, doubler.call(n).await) })
            })
            .collect();
        for call in calls {
            let (n, doubled) = call.await.unwrap_or_default();
            assert_eq!(doubled, Some(n * 2));
        }
        let sizes = sizes.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(sizes.iter().sum::<usize>(), 200);
        assert!(sizes.iter().all(|&size| size <= 16));
        assert!(sizes.len() < 200, "some calls shared a batch");
    }
}
