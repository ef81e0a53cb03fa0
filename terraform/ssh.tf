# target = "ssh": one node per host. The first host is the first server (with --cluster-init
# when server_count > 1 forms a highly available control plane on embedded etcd); the next
# server_count - 1 hosts join it as servers, the rest as agents.
#
# Remote scripts are inline text, so every value spliced into them is single-quoted and
# restricted by the validation blocks in variables.tf to characters that cannot end a quote.
# The join token never appears in a script: the file provisioner copies it into a private
# staging directory, and K3s reads it from a root-only file through K3S_TOKEN_FILE.
#
# Scripts and staging live in the SSH user's home directory, not in /tmp, which is often
# mounted noexec: remote-exec uploads each script to ./.shoal-<cluster>.sh and runs it there
# (one script at a time per host: the resources of a host are ordered), and the script removes
# itself when it ends; after a script that succeeded, Terraform leaves an empty file there.
#
# Joining nodes reach the first server at var.api_address, or else at the InternalIP K3s
# reports for it (its --node-ip when one is given): an address of the nodes' own network,
# not necessarily the one this machine reaches the host at over SSH (NAT, SSH aliases).

locals {
  ssh_nodes = var.target == "ssh" ? {
    for i, h in var.hosts : local.node_names[i] => {
      name          = local.node_names[i]
      role          = local.nodes[i].role
      user          = h.user
      host          = h.host
      port          = h.port
      node_ip       = h.node_ip
      flannel_iface = h.flannel_iface
      host_key      = h.host_key
      ssh_key_path  = var.ssh_key_path
      script_path   = "./.shoal-${var.cluster_name}.sh"
      stage_dir     = local.stage_dir
    }
  } : {}
  ssh_first   = { for name, n in local.ssh_nodes : name => n if name == local.first_name }
  ssh_joining = { for name, n in local.ssh_nodes : name => n if name != local.first_name }

  # Changing a node's name, address, node IP or flannel interface reinstalls it; other changes
  # (key path, host key, version) do not.
  ssh_node_ids = { for name, n in local.ssh_nodes : name => jsonencode([n.name, n.host, n.port, n.node_ip, n.flannel_iface]) }

  # Relative to the SSH user's home directory.
  stage_dir = ".shoal-${var.cluster_name}"

  # The arguments of `install.sh` for each node, single-quoted.
  ssh_install_args = {
    for name, n in local.ssh_nodes : name => join(" ", concat(
      [n.role, "--node-name", "'${n.name}'"],
      n.node_ip == null ? [] : ["--node-ip", "'${n.node_ip}'"],
      n.flannel_iface == null ? [] : ["--flannel-iface", "'${n.flannel_iface}'"],
      n.role != "server" ? [] : flatten([
        for san in distinct([for s in [n.host, n.node_ip, var.api_address, var.advertise_address] : s if s != null]) :
        ["--tls-san", "'${san}'"]
      ]),
      name == local.first_name && var.server_count > 1 ? ["--cluster-init"] : [],
    ))
  }

  # Creates the staging directory, refusing one that belongs to someone else.
  ssh_prepare_script = <<-EOT
    set -eu
    trap 'rm -f "$0"' EXIT
    stage="$HOME/${local.stage_dir}"
    if [ -L "$stage" ] || { [ -e "$stage" ] && [ ! -O "$stage" ]; }; then
      echo "shoal: $stage exists and is not owned by $(id -un); remove it" >&2
      exit 1
    fi
    mkdir -p "$stage/airgap"
    chmod 700 "$stage"
  EOT

  # Moves the token into place, opens the firewall, and provides the install script (downloaded,
  # or from the uploaded air-gap files); the caller appends the command that runs it.
  ssh_install_preamble = <<-EOT
    set -eu
    trap 'rm -f "$0"' EXIT
    stage="$HOME/${local.stage_dir}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    $SUDO mkdir -p /etc/rancher/k3s
    $SUDO install -m 0600 "$stage/token" '${local.token_file}'
    rm -f "$stage/token"
    ${local.firewall_script}
    export INSTALL_K3S_VERSION='${var.k3s_version}'
    export K3S_TOKEN_FILE='${local.token_file}'
    if [ '${var.airgap_dir != null}' = true ]; then
      $SUDO mkdir -p /var/lib/rancher/k3s/agent/images
      $SUDO install -m 0755 "$stage/airgap/k3s" /usr/local/bin/k3s
      for archive in "$stage"/airgap/k3s-airgap-images-*; do
        if [ -f "$archive" ]; then $SUDO cp "$archive" /var/lib/rancher/k3s/agent/images/; fi
      done
      script="$stage/airgap/install.sh"
      export INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_SKIP_SELINUX_RPM=true
    else
      script="$stage/install.sh"
      curl -sfL --retry 3 -o "$script" https://get.k3s.io
    fi
  EOT

  # Writes var.api_address, or the InternalIP the first server registered with (read over ssh),
  # to $ADDRESS_FILE.
  ssh_join_address_script = <<-EOT
    set -eu
    if [ -n "$API_ADDRESS" ]; then
      address=$API_ADDRESS
    else
      set -- -o BatchMode=yes -p "$SSH_PORT"
      if [ -n "$KNOWN_HOSTS" ]; then
        set -- "$@" -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS"
      else
        set -- "$@" -o StrictHostKeyChecking=accept-new
      fi
      if [ -n "$SSH_KEY" ]; then set -- "$@" -i "$SSH_KEY"; fi
      address=$(ssh "$@" "$SSH_USER@$SSH_HOST" sh -s "$NODE_NAME" <<'REMOTE' | awk '{ print $1 }'
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    $SUDO k3s kubectl get node "$1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}'
    REMOTE
    )
    fi
    if ! printf '%s' "$address" | grep -Eq '^[A-Za-z0-9:][A-Za-z0-9.:-]*$'; then
      echo "shoal: could not read the InternalIP of $NODE_NAME from $SSH_HOST; pass --api-address" >&2
      exit 1
    fi
    printf '%s\n' "$address" > "$ADDRESS_FILE"
  EOT

  # Reads the join address the first server's resource left, and checks that this node reaches
  # the API there before anything is installed: an unreachable address fails here, naming the
  # node, instead of as a K3s agent that never registers. Callers define stage; it defines url.
  ssh_join_check_script = <<-EOT
    join=$(cat "$stage/join-address")
    case "$join" in
    *:*) url="https://[$join]:6443" ;;
    *) url="https://$join:6443" ;;
    esac
    if command -v curl >/dev/null 2>&1 && ! curl -ks --max-time 10 -o /dev/null "$url/ping"; then
      echo "shoal: $(hostname) cannot reach the first server at $url; pass --api-address with an address the nodes reach" >&2
      exit 1
    fi
  EOT
}

# Uninstalls K3s from each host on destroy and removes the staging directory. A resource of its
# own, with no create-time provisioner, so it is never tainted: Terraform skips the destroy
# provisioners of a tainted resource, and an install that failed half way must be removed too.
resource "terraform_data" "ssh_uninstall" {
  for_each = local.ssh_nodes

  input            = each.value
  triggers_replace = [local.ssh_node_ids[each.key]]

  connection {
    type        = "ssh"
    host        = self.input.host
    port        = self.input.port
    user        = self.input.user
    private_key = self.input.ssh_key_path == null ? null : file(self.input.ssh_key_path)
    agent       = self.input.ssh_key_path == null
    host_key    = self.input.host_key
    script_path = self.input.script_path
    timeout     = "5m"
  }

  provisioner "remote-exec" {
    when = destroy
    inline = [<<-EOT
      set -eu
      trap 'rm -f "$0"' EXIT
      SUDO=""
      [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
      for uninstall in /usr/local/bin/k3s-uninstall.sh /usr/local/bin/k3s-agent-uninstall.sh; do
        if [ -x "$uninstall" ]; then $SUDO "$uninstall"; fi
      done
      rm -rf "$HOME/${self.input.stage_dir}"
    EOT
    ]
  }
}

# Air-gapped installs: copies var.airgap_dir into every host's staging directory first.
resource "terraform_data" "ssh_airgap" {
  for_each   = var.airgap_dir == null ? {} : local.ssh_nodes
  depends_on = [terraform_data.ssh_uninstall]

  input            = each.value
  triggers_replace = [local.ssh_node_ids[each.key]]

  connection {
    type        = "ssh"
    host        = self.input.host
    port        = self.input.port
    user        = self.input.user
    private_key = self.input.ssh_key_path == null ? null : file(self.input.ssh_key_path)
    agent       = self.input.ssh_key_path == null
    host_key    = self.input.host_key
    script_path = self.input.script_path
    timeout     = "5m"
  }

  provisioner "remote-exec" {
    inline = [local.ssh_prepare_script]
  }

  provisioner "file" {
    source      = "${var.airgap_dir}/"
    destination = "${local.stage_dir}/airgap"
  }
}

resource "terraform_data" "ssh_first_server" {
  for_each   = local.ssh_first
  depends_on = [terraform_data.ssh_airgap, terraform_data.ssh_uninstall]

  input            = each.value
  triggers_replace = [local.ssh_node_ids[each.key]]

  connection {
    type        = "ssh"
    host        = self.input.host
    port        = self.input.port
    user        = self.input.user
    private_key = self.input.ssh_key_path == null ? null : file(self.input.ssh_key_path)
    agent       = self.input.ssh_key_path == null
    host_key    = self.input.host_key
    script_path = self.input.script_path
    timeout     = "5m"
  }

  provisioner "remote-exec" {
    inline = [local.ssh_prepare_script]
  }

  provisioner "file" {
    content     = var.k3s_token
    destination = "${local.stage_dir}/token"
  }

  provisioner "remote-exec" {
    inline = [<<-EOT
      ${local.ssh_install_preamble}
      open_k3s_ports server '${var.server_count > 1}'
      sh "$script" ${local.ssh_install_args[each.key]}
      rm -rf "$stage"
    EOT
    ]
  }

}

# Writes join-address beside this configuration: var.api_address, or the InternalIP the first
# server registered with, read over ssh. The joining nodes upload it.
resource "terraform_data" "ssh_join_address" {
  for_each   = length(local.ssh_joining) > 0 ? local.ssh_first : {}
  depends_on = [terraform_data.ssh_first_server]

  input            = { path = "${path.root}/join-address" }
  triggers_replace = [local.ssh_node_ids[each.key], var.api_address]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = {
      ADDRESS_FILE = self.input.path
      API_ADDRESS  = var.api_address == null ? "" : var.api_address
      NODE_NAME    = each.value.name
      SSH_USER     = each.value.user
      SSH_HOST     = each.value.host
      SSH_PORT     = tostring(each.value.port)
      SSH_KEY      = var.ssh_key_path == null ? "" : var.ssh_key_path
      KNOWN_HOSTS  = var.known_hosts_path == null ? "" : var.known_hosts_path
    }
    command = local.ssh_join_address_script
  }
}

resource "terraform_data" "ssh_node" {
  for_each   = local.ssh_joining
  depends_on = [terraform_data.ssh_join_address, terraform_data.ssh_airgap, terraform_data.ssh_uninstall]

  input            = each.value
  triggers_replace = [local.ssh_node_ids[each.key]]

  connection {
    type        = "ssh"
    host        = self.input.host
    port        = self.input.port
    user        = self.input.user
    private_key = self.input.ssh_key_path == null ? null : file(self.input.ssh_key_path)
    agent       = self.input.ssh_key_path == null
    host_key    = self.input.host_key
    script_path = self.input.script_path
    timeout     = "5m"
  }

  provisioner "remote-exec" {
    inline = [local.ssh_prepare_script]
  }

  provisioner "file" {
    content     = var.k3s_token
    destination = "${local.stage_dir}/token"
  }

  provisioner "file" {
    source      = "${path.root}/join-address"
    destination = "${local.stage_dir}/join-address"
  }

  provisioner "remote-exec" {
    inline = [<<-EOT
      ${local.ssh_install_preamble}
      ${local.ssh_join_check_script}
      open_k3s_ports '${each.value.role}' '${var.server_count > 1}'
      sh "$script" ${local.ssh_install_args[each.key]} --server "$url"
      rm -rf "$stage"
    EOT
    ]
  }

}
