// The HCL shoal writes, per target. It must stay `terraform fmt` clean: the tests run
// `terraform fmt -check` on every variant. No user input is ever spliced into this text;
// values travel in terraform.tfvars.json.

enum HCL {
    /// versions.tf: the Terraform version the files need.
    static let versions = #"""
    # Only Terraform's built-in terraform_data resource is used: no provider to download, so
    # `terraform init` works offline. Ephemeral input variables need Terraform 1.10.
    terraform {
      required_version = ">= 1.10.0"
    }

    """#

    /// variables.tf: the variables every target declares.
    static let variablesCommon = #"""
    # Values live in terraform.tfvars.json; the join token comes only from TF_VAR_k3s_token.

    variable "cluster_name" {
      type        = string
      description = "Name of the cluster; node names derive from it."
      nullable    = false

      validation {
        condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$", var.cluster_name))
        error_message = "The cluster name must be 1-50 of a-z, 0-9 and '-', starting and ending with a letter or digit."
      }
    }

    variable "k3s_version" {
      type        = string
      description = "K3s release to install, such as v1.36.3+k3s1."
      nullable    = false

      validation {
        condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+(-rc[0-9]+)?\\+k3s[0-9]+$", var.k3s_version))
        error_message = "The K3s version must look like v1.36.3+k3s1."
      }
    }

    variable "kubeconfig_path" {
      type        = string
      description = "Absolute path where apply leaves the cluster's kubeconfig, mode 0600."
      nullable    = false

      validation {
        condition     = can(regex("^/[^[:cntrl:]]*$", var.kubeconfig_path))
        error_message = "The kubeconfig path must be absolute and free of control characters."
      }
    }

    # Ephemeral: Terraform keeps the token out of the state and the saved plan, and suppresses
    # the output of every provisioner that references it.
    variable "k3s_token" {
      type        = string
      description = "K3s join token, supplied only through the TF_VAR_k3s_token environment variable."
      sensitive   = true
      ephemeral   = true
      nullable    = false

      validation {
        condition     = can(regex("^[A-Za-z0-9]{32,}$", var.k3s_token))
        error_message = "The join token must be at least 32 letters and digits."
      }
    }

    """#

    /// variables.tf: appended for the ssh target.
    static let variablesSSH = #"""

    variable "hosts" {
      type = list(object({
        user = string
        host = string
        port = number
      }))
      description = "SSH destinations in node order: servers first, then agents."
      nullable    = false

      validation {
        condition     = length(var.hosts) >= 1 && length(var.hosts) <= 99
        error_message = "Give 1 to 99 hosts."
      }

      validation {
        condition     = alltrue([for h in var.hosts : can(regex("^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$", h.user))])
        error_message = "Each user must be a POSIX user name: 1-32 of letters, digits, '.', '_' and '-'."
      }

      validation {
        condition     = alltrue([for h in var.hosts : can(regex("^[A-Za-z0-9:][A-Za-z0-9.:-]{0,252}$", h.host))])
        error_message = "Each host must be a host name or an IP address."
      }

      validation {
        condition     = alltrue([for h in var.hosts : h.port >= 1 && h.port <= 65535 && floor(h.port) == h.port])
        error_message = "Each port must be a whole number from 1 to 65535."
      }
    }

    variable "server_count" {
      type        = number
      description = "How many of the hosts, from the first, are servers: 1, or 3 or more (odd) for embedded etcd."
      nullable    = false

      validation {
        condition     = var.server_count == 1 || (var.server_count >= 3 && var.server_count % 2 == 1)
        error_message = "The server count must be 1, or an odd number from 3 up."
      }

      validation {
        condition     = var.server_count <= length(var.hosts)
        error_message = "The server count cannot exceed the number of hosts."
      }
    }

    variable "ssh_key_path" {
      type        = string
      description = "Private key for SSH; the SSH agent is used when null."
      default     = null

      validation {
        condition     = var.ssh_key_path == null || can(regex("^/[^[:cntrl:]]*$", var.ssh_key_path))
        error_message = "The SSH key path must be absolute and free of control characters."
      }
    }

    """#

    /// variables.tf: appended for the docker target.
    static let variablesDocker = #"""

    variable "node_count" {
      type        = number
      description = "Number of node containers: servers first, then agents."
      nullable    = false

      validation {
        condition     = var.node_count >= 1 && var.node_count <= 99 && floor(var.node_count) == var.node_count
        error_message = "The node count must be a whole number from 1 to 99."
      }
    }

    variable "server_count" {
      type        = number
      description = "How many of the nodes, from the first, are servers: 1, or 3 or more (odd) for embedded etcd."
      nullable    = false

      validation {
        condition     = var.server_count == 1 || (var.server_count >= 3 && var.server_count % 2 == 1)
        error_message = "The server count must be 1, or an odd number from 3 up."
      }

      validation {
        condition     = var.server_count <= var.node_count
        error_message = "The server count cannot exceed the node count."
      }
    }

    variable "node_ports" {
      type        = list(number)
      description = "NodePorts the first server publishes on 127.0.0.1."
      nullable    = false

      validation {
        condition     = alltrue([for p in var.node_ports : p >= 30000 && p <= 32767 && floor(p) == p])
        error_message = "NodePorts must be whole numbers from 30000 to 32767."
      }
    }

    """#

    /// variables.tf: appended when installing from an air-gap directory.
    static let variablesAirgap = #"""

    variable "airgap_dir" {
      type        = string
      description = "Directory with the k3s binary, install.sh and k3s-airgap-images-* archives."
      nullable    = false

      validation {
        condition     = can(regex("^/[^[:cntrl:]]*$", var.airgap_dir))
        error_message = "The air-gap directory must be an absolute path free of control characters."
      }
    }

    """#

    /// outputs.tf: the same for every target (each main.tf defines the locals).
    static let outputs = #"""
    output "api_endpoint" {
      description = "URL of the Kubernetes API server."
      value       = local.api_endpoint
    }

    output "kubeconfig_path" {
      description = "Where apply left the cluster's kubeconfig (mode 0600)."
      value       = var.kubeconfig_path
    }

    output "node_names" {
      description = "Kubernetes node names, servers first."
      value       = local.node_names
    }

    """#

    /// main.tf for the local target.
    static let localMain = #"""
    # K3s on this host: one server, installed by the official script pinned to var.k3s_version.
    # Values reach the shell only through each provisioner's environment and are expanded
    # there as quoted "$VARIABLES", never spliced into the command text.

    locals {
      node_names   = ["${var.cluster_name}-server-0"]
      api_endpoint = "https://127.0.0.1:6443"
      token_file   = "/etc/rancher/k3s/shoal-token"
    }

    resource "terraform_data" "server_init" {
      input = {
        name = local.node_names[0]
      }

      # The token goes from the environment into a root-only file that K3s reads through
      # K3S_TOKEN_FILE. Terraform suppresses this provisioner's output because of the token.
      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          K3S_TOKEN  = var.k3s_token
          TOKEN_FILE = local.token_file
        }
        command = <<-EOT
          set -eu
          SUDO=""
          [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
          $SUDO mkdir -p "$(dirname "$TOKEN_FILE")"
          printf '%s' "$K3S_TOKEN" | $SUDO sh -c 'umask 077 && cat > "$1"' token "$TOKEN_FILE"
        EOT
      }

      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          INSTALL_K3S_VERSION = var.k3s_version
          K3S_TOKEN_FILE      = local.token_file
          NODE_NAME           = self.input.name
        }
        command = <<-EOT
          set -eu
          script=$(mktemp)
          trap 'rm -f "$script"' EXIT
          curl -sfL --retry 3 -o "$script" https://get.k3s.io
          sh "$script" server --node-name "$NODE_NAME"
        EOT
      }

      provisioner "local-exec" {
        when        = destroy
        interpreter = ["/bin/sh", "-c"]
        command     = <<-EOT
          set -eu
          SUDO=""
          [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
          if [ -x /usr/local/bin/k3s-uninstall.sh ]; then $SUDO /usr/local/bin/k3s-uninstall.sh; fi
        EOT
      }
    }

    # K3s writes its kubeconfig for root only; copy it for the operator with mode 0600. Its
    # server field, https://127.0.0.1:6443, is already right for this host.
    resource "terraform_data" "kubeconfig" {
      depends_on = [terraform_data.server_init]

      input = {
        path = var.kubeconfig_path
      }

      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          KUBECONFIG_PATH = self.input.path
        }
        command = <<-EOT
          set -eu
          SUDO=""
          [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
          umask 077
          mkdir -p "$(dirname "$KUBECONFIG_PATH")"
          $SUDO cat /etc/rancher/k3s/k3s.yaml > "$KUBECONFIG_PATH.tmp"
          chmod 600 "$KUBECONFIG_PATH.tmp"
          mv -f "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
        EOT
      }

      provisioner "local-exec" {
        when        = destroy
        interpreter = ["/bin/sh", "-c"]
        environment = {
          KUBECONFIG_PATH = self.input.path
        }
        command = "rm -f \"$KUBECONFIG_PATH\""
      }
    }

    """#

    /// The install provisioner of `localMain`; `localInstallAirgap` replaces it when air-gapped.
    static let localInstallOnline = #"""
      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          INSTALL_K3S_VERSION = var.k3s_version
          K3S_TOKEN_FILE      = local.token_file
          NODE_NAME           = self.input.name
        }
        command = <<-EOT
          set -eu
          script=$(mktemp)
          trap 'rm -f "$script"' EXIT
          curl -sfL --retry 3 -o "$script" https://get.k3s.io
          sh "$script" server --node-name "$NODE_NAME"
        EOT
      }


    """#

    /// Air-gapped install provisioner for the local target.
    static let localInstallAirgap = #"""
      # Air-gapped: the k3s binary and image archives come from var.airgap_dir, and the install
      # script skips every download.
      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          AIRGAP_DIR                   = var.airgap_dir
          INSTALL_K3S_VERSION          = var.k3s_version
          INSTALL_K3S_SKIP_DOWNLOAD    = "true"
          INSTALL_K3S_SKIP_SELINUX_RPM = "true"
          K3S_TOKEN_FILE               = local.token_file
          NODE_NAME                    = self.input.name
        }
        command = <<-EOT
          set -eu
          SUDO=""
          [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
          $SUDO install -m 0755 "$AIRGAP_DIR/k3s" /usr/local/bin/k3s
          $SUDO mkdir -p /var/lib/rancher/k3s/agent/images
          for archive in "$AIRGAP_DIR"/k3s-airgap-images-*; do
            if [ -f "$archive" ]; then $SUDO cp "$archive" /var/lib/rancher/k3s/agent/images/; fi
          done
          sh "$AIRGAP_DIR/install.sh" server --node-name "$NODE_NAME"
        EOT
      }


    """#

    /// main.tf for the ssh target.
    static let sshMain = #"""
    # K3s over SSH: the first host is the server (with --cluster-init when several servers form
    # a highly available control plane on embedded etcd), the next server_count - 1 hosts join
    # it as servers, the rest join as agents.
    #
    # Remote scripts are inline text, so every value spliced into them is single-quoted and
    # restricted by the validation blocks in variables.tf to characters that cannot end a
    # quote. The join token never appears in a script: the file provisioner copies it into a
    # private staging directory, and K3s reads it from a root-only file through K3S_TOKEN_FILE.

    locals {
      node_count = length(var.hosts)
      node_names = [
        for i in range(local.node_count) :
        format("%s-%s-%d", var.cluster_name, i < var.server_count ? "server" : "agent", i)
      ]
      nodes = [
        for i, h in var.hosts : {
          name         = local.node_names[i]
          user         = h.user
          host         = h.host
          port         = h.port
          ssh_key_path = var.ssh_key_path
        }
      ]
      # Changing a node's name or address replaces it; other changes (key path, version) do not.
      node_ids = [for n in local.nodes : "${n.name}/${n.host}:${n.port}"]
      # An IPv6 literal needs brackets inside a URL.
      api_host     = strcontains(var.hosts[0].host, ":") ? "[${var.hosts[0].host}]" : var.hosts[0].host
      api_endpoint = "https://${local.api_host}:6443"
      token_file   = "/etc/rancher/k3s/shoal-token"
      stage_dir    = "/tmp/shoal-${var.cluster_name}"
      cluster_init = var.server_count > 1 ? "--cluster-init" : ""

      # Creates the staging directory, refusing one that belongs to someone else.
      prepare_script = <<-EOT
        set -eu
        stage='${local.stage_dir}'
        if [ -L "$stage" ] || { [ -e "$stage" ] && [ ! -O "$stage" ]; }; then
          echo "shoal: $stage exists and is not owned by $(id -un); remove it" >&2
          exit 1
        fi
        mkdir -p "$stage"
        chmod 700 "$stage"
        mkdir -p "$stage/airgap"
      EOT

      # Moves the token into place and fetches the install script; the caller appends the
      # command that runs it.
      install_preamble = <<-EOT
        set -eu
        stage='${local.stage_dir}'
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
        $SUDO mkdir -p /etc/rancher/k3s
        $SUDO install -m 0600 "$stage/token" '${local.token_file}'
        rm -f "$stage/token"
        script="$stage/install.sh"
        curl -sfL --retry 3 -o "$script" https://get.k3s.io
        export INSTALL_K3S_VERSION='${var.k3s_version}'
        export K3S_TOKEN_FILE='${local.token_file}'
      EOT
    }

    resource "terraform_data" "server_init" {
      input            = local.nodes[0]
      triggers_replace = [local.node_ids[0]]

      connection {
        type        = "ssh"
        host        = self.input.host
        port        = self.input.port
        user        = self.input.user
        private_key = self.input.ssh_key_path == null ? null : file(self.input.ssh_key_path)
        agent       = self.input.ssh_key_path == null
        timeout     = "5m"
      }

      provisioner "remote-exec" {
        inline = [local.prepare_script]
      }

      provisioner "file" {
        content     = var.k3s_token
        destination = "${local.stage_dir}/token"
      }

      provisioner "remote-exec" {
        inline = [<<-EOT
          ${local.install_preamble}
          sh "$script" server ${local.cluster_init} --node-name '${self.input.name}' --tls-san '${self.input.host}'
          rm -rf "$stage"
        EOT
        ]
      }

      provisioner "remote-exec" {
        when = destroy
        inline = [<<-EOT
          set -eu
          SUDO=""
          [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
          if [ -x /usr/local/bin/k3s-uninstall.sh ]; then $SUDO /usr/local/bin/k3s-uninstall.sh; fi
        EOT
        ]
      }
    }

    resource "terraform_data" "server_join" {
      count      = var.server_count - 1
      depends_on = [terraform_data.server_init]

      input            = local.nodes[count.index + 1]
      triggers_replace = [local.node_ids[count.index + 1]]

      connection {
        type        = "ssh"
        host        = self.input.host
        port        = self.input.port
        user        = self.input.user
        private_key = self.input.ssh_key_path == null ? null : file(self.input.ssh_key_path)
        agent       = self.input.ssh_key_path == null
        timeout     = "5m"
      }

      provisioner "remote-exec" {
        inline = [local.prepare_script]
      }

      provisioner "file" {
        content     = var.k3s_token
        destination = "${local.stage_dir}/token"
      }

      provisioner "remote-exec" {
        inline = [<<-EOT
          ${local.install_preamble}
          sh "$script" server --server '${local.api_endpoint}' \
            --node-name '${self.input.name}' --tls-san '${self.input.host}'
          rm -rf "$stage"
        EOT
        ]
      }

      provisioner "remote-exec" {
        when = destroy
        inline = [<<-EOT
          set -eu
          SUDO=""
          [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
          if [ -x /usr/local/bin/k3s-uninstall.sh ]; then $SUDO /usr/local/bin/k3s-uninstall.sh; fi
        EOT
        ]
      }
    }

    resource "terraform_data" "agent" {
      count      = local.node_count - var.server_count
      depends_on = [terraform_data.server_init]

      input            = local.nodes[var.server_count + count.index]
      triggers_replace = [local.node_ids[var.server_count + count.index]]

      connection {
        type        = "ssh"
        host        = self.input.host
        port        = self.input.port
        user        = self.input.user
        private_key = self.input.ssh_key_path == null ? null : file(self.input.ssh_key_path)
        agent       = self.input.ssh_key_path == null
        timeout     = "5m"
      }

      provisioner "remote-exec" {
        inline = [local.prepare_script]
      }

      provisioner "file" {
        content     = var.k3s_token
        destination = "${local.stage_dir}/token"
      }

      provisioner "remote-exec" {
        inline = [<<-EOT
          ${local.install_preamble}
          export K3S_URL='${local.api_endpoint}'
          sh "$script" agent --node-name '${self.input.name}'
          rm -rf "$stage"
        EOT
        ]
      }

      provisioner "remote-exec" {
        when = destroy
        inline = [<<-EOT
          set -eu
          SUDO=""
          [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
          if [ -x /usr/local/bin/k3s-agent-uninstall.sh ]; then $SUDO /usr/local/bin/k3s-agent-uninstall.sh; fi
        EOT
        ]
      }
    }

    # Fetches the kubeconfig from the first server over ssh and points its server field at that
    # host. The rewrite is a structured edit by `kubectl config set-cluster` on the fetched copy:
    # only clusters[default].cluster.server changes, whatever else the file holds.
    resource "terraform_data" "kubeconfig" {
      depends_on = [terraform_data.server_init]

      input = {
        path = var.kubeconfig_path
      }

      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          KUBECONFIG_PATH = self.input.path
          API_ENDPOINT    = local.api_endpoint
          SSH_USER        = local.nodes[0].user
          SSH_HOST        = local.nodes[0].host
          SSH_PORT        = tostring(local.nodes[0].port)
          SSH_KEY         = var.ssh_key_path == null ? "" : var.ssh_key_path
        }
        command = <<-EOT
          set -eu
          if ! command -v kubectl >/dev/null; then
            echo "shoal: kubectl is needed to rewrite the kubeconfig's server field" >&2
            exit 1
          fi
          umask 077
          mkdir -p "$(dirname "$KUBECONFIG_PATH")"
          tmp="$KUBECONFIG_PATH.tmp"
          set -- -o BatchMode=yes -o StrictHostKeyChecking=accept-new -p "$SSH_PORT"
          if [ -n "$SSH_KEY" ]; then set -- "$@" -i "$SSH_KEY"; fi
          remote='sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"; $sudo cat /etc/rancher/k3s/k3s.yaml'
          ssh "$@" "$SSH_USER@$SSH_HOST" "$remote" > "$tmp"
          kubectl config set-cluster default --server="$API_ENDPOINT" --kubeconfig="$tmp" >/dev/null
          chmod 600 "$tmp"
          mv -f "$tmp" "$KUBECONFIG_PATH"
        EOT
      }

      provisioner "local-exec" {
        when        = destroy
        interpreter = ["/bin/sh", "-c"]
        environment = {
          KUBECONFIG_PATH = self.input.path
        }
        command = "rm -f \"$KUBECONFIG_PATH\""
      }
    }

    """#

    /// The install preamble of `sshMain`; `sshPreambleAirgap` replaces it when air-gapped.
    static let sshPreambleOnline = #"""
      # Moves the token into place and fetches the install script; the caller appends the
      # command that runs it.
      install_preamble = <<-EOT
        set -eu
        stage='${local.stage_dir}'
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
        $SUDO mkdir -p /etc/rancher/k3s
        $SUDO install -m 0600 "$stage/token" '${local.token_file}'
        rm -f "$stage/token"
        script="$stage/install.sh"
        curl -sfL --retry 3 -o "$script" https://get.k3s.io
        export INSTALL_K3S_VERSION='${var.k3s_version}'
        export K3S_TOKEN_FILE='${local.token_file}'
      EOT

    """#

    /// Air-gapped install preamble for the ssh target.
    static let sshPreambleAirgap = #"""
      # Moves the token into place and installs the k3s binary and image archives uploaded
      # from var.airgap_dir; the caller appends the command that runs the install script,
      # which skips every download.
      install_preamble = <<-EOT
        set -eu
        stage='${local.stage_dir}'
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
        $SUDO mkdir -p /etc/rancher/k3s /var/lib/rancher/k3s/agent/images
        $SUDO install -m 0600 "$stage/token" '${local.token_file}'
        rm -f "$stage/token"
        $SUDO install -m 0755 "$stage/airgap/k3s" /usr/local/bin/k3s
        for archive in "$stage"/airgap/k3s-airgap-images-*; do
          if [ -f "$archive" ]; then $SUDO cp "$archive" /var/lib/rancher/k3s/agent/images/; fi
        done
        script="$stage/airgap/install.sh"
        export INSTALL_K3S_SKIP_DOWNLOAD=true
        export INSTALL_K3S_SKIP_SELINUX_RPM=true
        export INSTALL_K3S_VERSION='${var.k3s_version}'
        export K3S_TOKEN_FILE='${local.token_file}'
      EOT

    """#

    /// The end of the token upload in each ssh node resource; `sshAirgapUpload` follows it when air-gapped.
    static let sshTokenUpload = #"""
        destination = "${local.stage_dir}/token"
      }

    """#

    /// Uploads the air-gap directory into the staging directory of an ssh node.
    static let sshAirgapUpload = #"""

      provisioner "file" {
        source      = "${var.airgap_dir}/"
        destination = "${local.stage_dir}/airgap"
      }

    """#

    /// main.tf for the docker target.
    static let dockerMain = #"""
    # K3s in containers: the rancher/k3s image of var.k3s_version, one server (or server_count
    # servers on embedded etcd) and agents, on a docker network of their own. The first server
    # publishes the API (6443) and the NodePorts on 127.0.0.1 only.
    #
    # Values reach the shell only through each provisioner's environment and are expanded
    # there as quoted "$VARIABLES", never spliced into the command text. The join token is
    # handed to `docker run --env K3S_TOKEN` by name, so it never appears on a command line.

    locals {
      image   = "rancher/k3s:${replace(var.k3s_version, "+", "-")}"
      network = "${var.cluster_name}-net"
      node_names = [
        for i in range(var.node_count) :
        format("%s-%s-%d", var.cluster_name, i < var.server_count ? "server" : "agent", i)
      ]
      server_url   = "https://${local.node_names[0]}:6443"
      api_endpoint = "https://127.0.0.1:6443"

      # Starts one node container. A leftover container of the same name is replaced only when
      # it carries this cluster's label; anything else is refused.
      run_script = <<-EOT
        set -eu
        if docker container inspect "$NAME" >/dev/null 2>&1; then
          owner=$(docker container inspect --format '{{ index .Config.Labels "io.shoal.cluster" }}' "$NAME")
          if [ "$owner" != "$CLUSTER" ]; then
            echo "shoal: a container named $NAME exists and is not part of cluster $CLUSTER" >&2
            exit 1
          fi
          docker rm --force --volumes "$NAME" >/dev/null
        fi
        set -- --detach --name "$NAME" --hostname "$NAME" --network "$NETWORK" \
          --label "io.shoal.cluster=$CLUSTER" --privileged --restart unless-stopped \
          --tmpfs /run --tmpfs /var/run --add-host host.k3d.internal:host-gateway --env K3S_TOKEN
        if [ -n "$PUBLISH_PORTS" ]; then
          for port in $PUBLISH_PORTS; do
            set -- "$@" --publish "127.0.0.1:$port:$port"
          done
        fi
        set -- "$@" "$IMAGE" "$ROLE" --node-name "$NAME"
        if [ "$ROLE" = server ]; then set -- "$@" --tls-san 127.0.0.1; fi
        if [ -n "$JOIN_URL" ]; then set -- "$@" --server "$JOIN_URL"; fi
        if [ "$CLUSTER_INIT" = true ]; then set -- "$@" --cluster-init; fi
        docker run "$@" >/dev/null
      EOT
    }

    resource "terraform_data" "network" {
      input = {
        network = local.network
        cluster = var.cluster_name
      }

      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          NETWORK = self.input.network
          CLUSTER = self.input.cluster
        }
        command = <<-EOT
          set -eu
          if ! docker network inspect "$NETWORK" >/dev/null 2>&1; then
            docker network create --driver bridge --label "io.shoal.cluster=$CLUSTER" "$NETWORK" >/dev/null
          fi
        EOT
      }

      provisioner "local-exec" {
        when        = destroy
        interpreter = ["/bin/sh", "-c"]
        environment = {
          NETWORK = self.input.network
        }
        command = <<-EOT
          set -eu
          if docker network inspect "$NETWORK" >/dev/null 2>&1; then docker network rm "$NETWORK" >/dev/null; fi
        EOT
      }
    }

    resource "terraform_data" "server_init" {
      depends_on = [terraform_data.network]

      input = {
        name    = local.node_names[0]
        image   = local.image
        network = local.network
      }
      triggers_replace = [local.node_names[0], local.network]

      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          K3S_TOKEN     = var.k3s_token
          NAME          = self.input.name
          IMAGE         = self.input.image
          NETWORK       = self.input.network
          CLUSTER       = var.cluster_name
          ROLE          = "server"
          JOIN_URL      = ""
          CLUSTER_INIT  = tostring(var.server_count > 1)
          PUBLISH_PORTS = join(" ", concat([6443], var.node_ports))
        }
        command = local.run_script
      }

      # Waits until the API server answers, so that joining nodes find it.
      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          NAME = self.input.name
        }
        command = <<-EOT
          set -eu
          i=0
          until docker exec "$NAME" kubectl get --raw /readyz >/dev/null 2>&1; do
            i=$((i + 1))
            if [ "$i" -ge 180 ]; then
              echo "shoal: the K3s server in container $NAME was not ready after 180 s" >&2
              docker logs --tail 20 "$NAME" >&2 || true
              exit 1
            fi
            sleep 1
          done
        EOT
      }

      provisioner "local-exec" {
        when        = destroy
        interpreter = ["/bin/sh", "-c"]
        environment = {
          NAME = self.input.name
        }
        command = <<-EOT
          set -eu
          if docker container inspect "$NAME" >/dev/null 2>&1; then docker rm --force --volumes "$NAME" >/dev/null; fi
        EOT
      }
    }

    resource "terraform_data" "server_join" {
      count      = var.server_count - 1
      depends_on = [terraform_data.server_init]

      input = {
        name    = local.node_names[count.index + 1]
        image   = local.image
        network = local.network
      }
      triggers_replace = [local.node_names[count.index + 1], local.network]

      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          K3S_TOKEN     = var.k3s_token
          NAME          = self.input.name
          IMAGE         = self.input.image
          NETWORK       = self.input.network
          CLUSTER       = var.cluster_name
          ROLE          = "server"
          JOIN_URL      = local.server_url
          CLUSTER_INIT  = "false"
          PUBLISH_PORTS = ""
        }
        command = local.run_script
      }

      provisioner "local-exec" {
        when        = destroy
        interpreter = ["/bin/sh", "-c"]
        environment = {
          NAME = self.input.name
        }
        command = <<-EOT
          set -eu
          if docker container inspect "$NAME" >/dev/null 2>&1; then docker rm --force --volumes "$NAME" >/dev/null; fi
        EOT
      }
    }

    resource "terraform_data" "agent" {
      count      = var.node_count - var.server_count
      depends_on = [terraform_data.server_init]

      input = {
        name    = local.node_names[var.server_count + count.index]
        image   = local.image
        network = local.network
      }
      triggers_replace = [local.node_names[var.server_count + count.index], local.network]

      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          K3S_TOKEN     = var.k3s_token
          NAME          = self.input.name
          IMAGE         = self.input.image
          NETWORK       = self.input.network
          CLUSTER       = var.cluster_name
          ROLE          = "agent"
          JOIN_URL      = local.server_url
          CLUSTER_INIT  = "false"
          PUBLISH_PORTS = ""
        }
        command = local.run_script
      }

      provisioner "local-exec" {
        when        = destroy
        interpreter = ["/bin/sh", "-c"]
        environment = {
          NAME = self.input.name
        }
        command = <<-EOT
          set -eu
          if docker container inspect "$NAME" >/dev/null 2>&1; then docker rm --force --volumes "$NAME" >/dev/null; fi
        EOT
      }
    }

    # Copies the kubeconfig out of the first server with mode 0600. Its server field,
    # https://127.0.0.1:6443, is already right: that is where the container's API is published.
    resource "terraform_data" "kubeconfig" {
      depends_on = [terraform_data.server_init]

      input = {
        path = var.kubeconfig_path
      }

      provisioner "local-exec" {
        interpreter = ["/bin/sh", "-c"]
        environment = {
          KUBECONFIG_PATH = self.input.path
          SERVER          = local.node_names[0]
        }
        command = <<-EOT
          set -eu
          umask 077
          mkdir -p "$(dirname "$KUBECONFIG_PATH")"
          docker exec "$SERVER" cat /etc/rancher/k3s/k3s.yaml > "$KUBECONFIG_PATH.tmp"
          chmod 600 "$KUBECONFIG_PATH.tmp"
          mv -f "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
        EOT
      }

      provisioner "local-exec" {
        when        = destroy
        interpreter = ["/bin/sh", "-c"]
        environment = {
          KUBECONFIG_PATH = self.input.path
        }
        command = "rm -f \"$KUBECONFIG_PATH\""
      }
    }

    """#
}
