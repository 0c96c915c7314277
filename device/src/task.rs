//! Blocking work (the store, the key log, media checks) on tokio's blocking pool,
//! inside the span of the task that asks for it: a session's tasks run in a
//! `device{id=…}` span (`pump::spawn`), and without this the logs of the store's and
//! the keys' work would not say which device of a process wrote them (the end-to-end
//! tests run several; an app may hold a second account).

use tokio::task::JoinHandle;

/// [`tokio::task::spawn_blocking`], in the current span and with the current
/// subscriber (a test's or an app's own, set for its thread only, sees the work too).
pub(crate) fn spawn_blocking<T, F>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(f))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::{Subscriber, span};
    use tracing_subscriber::{Layer, layer::SubscriberExt, registry::LookupSpan};

    /// Records the name of the span each event was logged in.
    struct Spans(Arc<Mutex<Vec<Option<String>>>>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
        fn on_event(&self, _: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
            let name = ctx.lookup_current().map(|s| s.name().to_owned());
            self.0.lock().expect("spans").push(name);
        }
    }

    #[test]
    fn blocking_work_logs_in_the_span_of_the_task_that_asked_for_it() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Spans(Arc::clone(&seen)));
        let _guard = tracing::subscriber::set_default(subscriber);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let device = span!(tracing::Level::INFO, "device");
            let _in = device.enter();
            super::spawn_blocking(|| tracing::info!("in the store"))
                .await
                .expect("ran");
            tokio::task::spawn_blocking(|| tracing::info!("outside"))
                .await
                .expect("ran");
        });
        // The plain one ran outside both: this thread's subscriber never saw it.
        assert_eq!(
            *seen.lock().expect("spans"),
            vec![Some("device".to_owned())]
        );
    }
}
