output "api_endpoint" {
  description = "URL of the Kubernetes API server, as the kubeconfig names it."
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
