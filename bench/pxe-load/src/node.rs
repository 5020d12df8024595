//! One simulated node's boot, step by step, timing each step.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use onboarding_proto::NodeState;
use onboarding_proto::v1::OnboardNodeStreamRequest;
use onboarding_proto::v1::non_interactive_onboarding_service_client::NonInteractiveOnboardingServiceClient;
use tink_proto::current::workflow_service_client::WorkflowServiceClient;
use tink_proto::current::{ActionRequest, ActionResponse, ActionStatusRequest, StateType};
use tonic::transport::{Channel, Endpoint};

use crate::dhcp::{self, Hub, PxeClient};
use crate::stats::{NodeOutcome, Step};
use crate::{Args, Steps};

/// Bounded waits for things the server may not have ready yet (a workflow right after
/// discovery, a REGISTERED answer).
const POLL_TRIES: u32 = 50;
const POLL_WAIT: Duration = Duration::from_millis(200);

pub struct Node {
    pub index: usize,
    pub client: PxeClient,
}

impl Node {
    pub fn new(index: usize, first_ip: Ipv4Addr) -> Self {
        let n = u32::try_from(index).unwrap_or(u32::MAX);
        let ip = Ipv4Addr::from(u32::from(first_ip).wrapping_add(n));
        let [a, b, c, d] = n.to_be_bytes();
        let mac = [0x02, 0x42, a, b, c, d];
        let mut uuid = [0u8; 16];
        uuid[..4].copy_from_slice(&0xb007_0000u32.to_be_bytes());
        uuid[12..].copy_from_slice(&n.to_be_bytes());
        Self {
            index,
            client: PxeClient { mac, uuid, ip },
        }
    }

    pub fn mac(&self) -> String {
        self.client
            .mac
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    fn uuid(&self) -> String {
        let hex: String = self
            .client
            .uuid
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    fn serial(&self) -> String {
        format!("LOAD{:06}", self.index)
    }

    /// Runs every step `args.steps` asks for; the first failure ends the node.
    pub async fn boot(self, hub: Arc<Hub>, args: Arc<Args>) -> NodeOutcome {
        let mut outcome = NodeOutcome::default();
        if let Err((step, error)) = self.steps(&hub, &args, &mut outcome).await {
            outcome.fail(step, error);
        }
        outcome
    }

    async fn steps(
        &self,
        hub: &Hub,
        args: &Args,
        outcome: &mut NodeOutcome,
    ) -> Result<(), (Step, anyhow::Error)> {
        let boot_file = self.dhcp(hub, args, outcome).await?;
        let started = Instant::now();
        let server = SocketAddr::from((boot_file.server, args.tftp_port));
        let file = args.tftp_file.as_deref().unwrap_or(&boot_file.name);
        outcome.tftp_bytes = crate::tftp::fetch(
            self.client.ip,
            server,
            file,
            args.blksize,
            Duration::from_secs(1),
        )
        .await
        .map_err(|error| (Step::Tftp, error))?;
        outcome.timings.push((Step::Tftp, started.elapsed()));
        if args.steps == Steps::DhcpTftp {
            return Ok(());
        }
        timed(outcome, Step::IpxeScript, self.ipxe_script(args)).await?;
        let channel = self
            .channel(args)
            .map_err(|error| (Step::Discovery, error))?;
        timed(outcome, Step::Discovery, self.discover(channel.clone())).await?;
        self.run_workflow(channel, args.actions, outcome).await
    }

    async fn dhcp(
        &self,
        hub: &Hub,
        args: &Args,
        outcome: &mut NodeOutcome,
    ) -> Result<dhcp::BootFile, (Step, anyhow::Error)> {
        let started = Instant::now();
        let offer = hub
            .discover(&self.client, args.server, args.dhcp_port)
            .await
            .map_err(|error| (Step::DhcpOffer, error))?;
        outcome.timings.push((Step::DhcpOffer, started.elapsed()));
        if let Some(file) = dhcp::boot_file(&offer) {
            return Ok(file);
        }
        // No boot file in the offer: ask the PXE boot server, as the PXE spec's clients do.
        let started = Instant::now();
        let ack = hub
            .boot_request(&self.client, args.server, args.boot_server_port)
            .await
            .map_err(|error| (Step::DhcpBootAck, error))?;
        outcome.timings.push((Step::DhcpBootAck, started.elapsed()));
        dhcp::boot_file(&ack).ok_or_else(|| {
            (
                Step::DhcpBootAck,
                anyhow::anyhow!("neither the offer nor the boot server's ACK names a boot file"),
            )
        })
    }

    /// What iPXE fetches after it starts: the generic script, then this node's.
    async fn ipxe_script(&self, args: &Args) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .local_address(IpAddr::V4(self.client.ip))
            .timeout(Duration::from_secs(30))
            .build()?;
        let base = format!("http://{}:{}", args.server, args.http_port);
        let auto = get_text(&client, &format!("{base}/ipxe/auto.ipxe")).await?;
        if !auto.starts_with("#!ipxe") {
            bail!("/ipxe/auto.ipxe is not an iPXE script: {auto:.80}");
        }
        let url = format!(
            "{base}/ipxe/boot.ipxe?mac={}&uuid={}&serial={}&platform=efi&arch=x86_64",
            self.mac(),
            self.uuid(),
            self.serial()
        );
        let script = get_text(&client, &url).await?;
        if !script.contains("kernel") {
            bail!("the node's script does not boot a kernel: {script:.200}");
        }
        Ok(())
    }

    fn channel(&self, args: &Args) -> anyhow::Result<Channel> {
        let endpoint = Endpoint::from_shared(format!("http://{}:{}", args.server, args.grpc_port))
            .context("the gRPC address")?
            .local_address(Some(IpAddr::V4(self.client.ip)))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30));
        Ok(endpoint.connect_lazy())
    }

    /// Device discovery: onboard until ONBOARDED (REGISTERED answers are retried, bounded).
    async fn discover(&self, channel: Channel) -> anyhow::Result<()> {
        let mut client = NonInteractiveOnboardingServiceClient::new(channel);
        for _ in 0..POLL_TRIES {
            let request = OnboardNodeStreamRequest {
                uuid: self.uuid(),
                serialnum: self.serial(),
                mac_id: self.mac(),
                host_ip: self.client.ip.to_string(),
                mac_ids: vec![self.mac()],
                hardware_json: String::new(),
                bootkit_csr_pem: String::new(),
            };
            let mut responses = client
                .onboard_node_stream(futures::stream::iter([request]))
                .await?
                .into_inner();
            let response = responses
                .message()
                .await?
                .context("the onboarding stream ended without an answer")?;
            if let Some(status) = response.status.as_ref().filter(|status| status.code != 0) {
                bail!(
                    "onboarding refused: code {}: {}",
                    status.code,
                    status.message
                );
            }
            if response.node_state() == NodeState::Onboarded {
                return Ok(());
            }
            tokio::time::sleep(POLL_WAIT).await;
        }
        bail!("still not onboarded after {POLL_TRIES} tries")
    }

    /// GetAction / ReportActionStatus (RUNNING, SUCCESS) for each of `actions` actions.
    async fn run_workflow(
        &self,
        channel: Channel,
        actions: u64,
        outcome: &mut NodeOutcome,
    ) -> Result<(), (Step, anyhow::Error)> {
        let mut client = WorkflowServiceClient::new(channel);
        while outcome.actions_completed < actions {
            let started = Instant::now();
            let action = self
                .next_action(&mut client)
                .await
                .map_err(|error| (Step::GetAction, error))?;
            outcome.timings.push((Step::GetAction, started.elapsed()));
            for state in [StateType::Running, StateType::Success] {
                outcome.reports_sent += 1;
                let started = Instant::now();
                report(&mut client, &action, state)
                    .await
                    .map_err(|error| (Step::ReportStatus, error))?;
                outcome
                    .timings
                    .push((Step::ReportStatus, started.elapsed()));
                outcome.reports_acknowledged += 1;
            }
            outcome.actions_completed += 1;
        }
        Ok(())
    }

    async fn next_action(
        &self,
        client: &mut WorkflowServiceClient<Channel>,
    ) -> anyhow::Result<ActionResponse> {
        for _ in 0..POLL_TRIES {
            let request = ActionRequest {
                agent_id: Some(self.mac()),
                agent_attributes: None,
            };
            match client.get_action(request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if status.code() == tonic::Code::NotFound => {
                    tokio::time::sleep(POLL_WAIT).await;
                }
                Err(status) => return Err(status.into()),
            }
        }
        bail!("no action for {} after {POLL_TRIES} tries", self.mac())
    }
}

async fn report(
    client: &mut WorkflowServiceClient<Channel>,
    action: &ActionResponse,
    state: StateType,
) -> anyhow::Result<()> {
    let now = prost_types::Timestamp::from(SystemTime::now());
    let request = ActionStatusRequest {
        workflow_id: action.workflow_id.clone(),
        agent_id: action.agent_id.clone(),
        task_id: action.task_id.clone(),
        action_id: action.action_id.clone(),
        action_name: action.name.clone(),
        action_state: Some(state as i32),
        execution_start: Some(now),
        execution_stop: (state == StateType::Success).then_some(now),
        execution_duration: (state == StateType::Success).then(|| "0s".to_string()),
        message: None,
    };
    client.report_action_status(request).await?;
    Ok(())
}

async fn get_text(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading {url}"))?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {text:.200}");
    }
    Ok(text)
}

async fn timed<T>(
    outcome: &mut NodeOutcome,
    step: Step,
    work: impl Future<Output = anyhow::Result<T>>,
) -> Result<T, (Step, anyhow::Error)> {
    let started = Instant::now();
    let value = work.await.map_err(|error| (step, error))?;
    outcome.timings.push((step, started.elapsed()));
    Ok(value)
}
