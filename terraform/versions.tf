# shoal's K3s configuration. shoal writes terraform.tfvars.json beside these files (one
# configuration for every target, node count and option: the variables choose) and runs
# terraform here. Only Terraform's built-in terraform_data resource is used, so there is no
# provider to download and `terraform init` works offline. Ephemeral input variables need 1.10.
terraform {
  required_version = ">= 1.10.0"
}
