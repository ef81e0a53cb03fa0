# Values live in terraform.tfvars.json; the join token comes only from TF_VAR_k3s_token.
# shoal checks every value before writing it; the validation blocks check them a second time,
# so a hand-edited terraform.tfvars.json cannot put shell syntax into a provisioner.

variable "target" {
  type        = string
  description = "Where K3s runs: local (this host), ssh (one host per node) or docker (one container per node)."
  nullable    = false

  validation {
    condition     = contains(["local", "ssh", "docker"], var.target)
    error_message = "The target must be local, ssh or docker."
  }
}

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

variable "node_count" {
  type        = number
  description = "Number of nodes: servers first, then agents."
  nullable    = false

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 99 && floor(var.node_count) == var.node_count
    error_message = "The node count must be a whole number from 1 to 99."
  }

  validation {
    condition     = var.target != "local" || var.node_count == 1
    error_message = "The local target runs exactly one node."
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

variable "hosts" {
  type = list(object({
    user          = string
    host          = string
    port          = number
    node_ip       = optional(string)
    flannel_iface = optional(string)
    host_key      = optional(string)
  }))
  description = "ssh target: one SSH destination per node, servers first, with its optional K3s node IP, flannel interface and pinned host key."
  default     = []
  nullable    = false

  validation {
    condition     = var.target == "ssh" ? length(var.hosts) == var.node_count : length(var.hosts) == 0
    error_message = "The ssh target needs one host per node; the other targets take no hosts."
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

  validation {
    condition     = alltrue([for h in var.hosts : h.node_ip == null || can(regex("^[0-9A-Fa-f.:]{2,45}$", h.node_ip))])
    error_message = "Each node IP must be an IPv4 or IPv6 address."
  }

  validation {
    condition     = alltrue([for h in var.hosts : h.flannel_iface == null || can(regex("^[A-Za-z0-9_.-]{1,15}$", h.flannel_iface))])
    error_message = "Each flannel interface must be a network interface name of 1-15 letters, digits, '.', '_' and '-'."
  }

  validation {
    condition     = alltrue([for h in var.hosts : h.host_key == null || can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}$", h.host_key))])
    error_message = "Each host key must be an OpenSSH public key: TYPE BASE64."
  }
}

variable "ssh_key_path" {
  type        = string
  description = "ssh target: the private key for SSH; the SSH agent is used when null."
  default     = null

  validation {
    condition     = var.ssh_key_path == null || can(regex("^/[^[:cntrl:]]*$", var.ssh_key_path))
    error_message = "The SSH key path must be absolute and free of control characters."
  }
}

variable "known_hosts_path" {
  type        = string
  description = "ssh target: a known_hosts file with the hosts' keys, checked by every ssh command; accept-new when null."
  default     = null

  validation {
    condition     = var.known_hosts_path == null || can(regex("^/[^[:cntrl:]]*$", var.known_hosts_path))
    error_message = "The known_hosts path must be absolute and free of control characters."
  }
}

variable "api_address" {
  type        = string
  description = "ssh target: the address the other nodes join the first server at; its InternalIP, read after install, when null."
  default     = null

  validation {
    condition     = var.api_address == null || can(regex("^[A-Za-z0-9:][A-Za-z0-9.:-]{0,252}$", var.api_address))
    error_message = "The API address must be a host name or an IP address."
  }

  validation {
    condition     = var.api_address == null || var.target == "ssh"
    error_message = "The API address is only used by the ssh target."
  }
}

variable "advertise_address" {
  type        = string
  description = "The address other hosts reach the cluster at: kubeconfig server, TLS SAN, NodePorts (docker: where ports are published). 127.0.0.1 (local, docker) or the first host (ssh) when null."
  default     = null

  validation {
    condition     = var.advertise_address == null || can(regex("^[A-Za-z0-9:][A-Za-z0-9.:-]{0,252}$", var.advertise_address))
    error_message = "The advertise address must be a host name or an IP address."
  }
}

variable "airgap_dir" {
  type        = string
  description = "local and ssh targets: directory with the k3s binary, install.sh and k3s-airgap-images-* archives; downloads when null."
  default     = null

  validation {
    condition     = var.airgap_dir == null || can(regex("^/[^[:cntrl:]]*$", var.airgap_dir))
    error_message = "The air-gap directory must be an absolute path free of control characters."
  }

  validation {
    condition     = var.airgap_dir == null || var.target != "docker"
    error_message = "The docker target does not install from an air-gap directory: load the rancher/k3s image with docker load."
  }
}

variable "node_ports" {
  type        = list(number)
  description = "NodePorts of Argo CD, Prometheus, Grafana and Headlamp: published by docker, opened in ufw/firewalld on hosts."
  default     = [30080, 30090, 30300, 30466]
  nullable    = false

  validation {
    condition     = alltrue([for p in var.node_ports : p >= 30000 && p <= 32767 && floor(p) == p])
    error_message = "NodePorts must be whole numbers from 30000 to 32767."
  }
}
