//! A receiver on 127.0.0.1 (UDP and TCP) whose sink passes messages to the test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bootkit_syslog_receiver::{Config, Counters, Message, Receiver, Sink};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Long enough for a loaded machine; a test only waits this long when it is failing.
pub const WAIT: Duration = Duration::from_secs(20);

struct ChannelSink(mpsc::UnboundedSender<Message>);

impl Sink for ChannelSink {
    fn receive(&self, message: Message) {
        let _ = self.0.send(message);
    }
}

/// The receiver task; aborted when dropped, so a failing test does not leave it running.
pub struct TestReceiver {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub counters: Arc<Counters>,
    messages: mpsc::UnboundedReceiver<Message>,
    task: JoinHandle<()>,
}

impl TestReceiver {
    pub async fn start() -> Self {
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let config = Config {
            udp: Some(loopback),
            tcp: Some(loopback),
            tls: None,
        };
        let receiver = Receiver::bind(config)
            .await
            .expect("bind syslog on loopback");
        let udp = receiver.udp_addr().expect("UDP address");
        let tcp = receiver.tcp_addr().expect("TCP address");
        let counters = Arc::new(Counters::default());
        let (sender, messages) = mpsc::unbounded_channel();
        let task = tokio::spawn({
            let counters = Arc::clone(&counters);
            async move {
                receiver
                    .serve(Arc::new(ChannelSink(sender)), counters)
                    .await
                    .expect("syslog receiver");
            }
        });
        Self {
            udp,
            tcp,
            counters,
            messages,
            task,
        }
    }

    pub async fn next(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.messages.recv())
            .await
            .expect("a message in time")
            .expect("receiver running")
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
