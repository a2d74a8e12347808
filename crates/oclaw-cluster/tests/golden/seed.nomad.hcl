# Rendered by `oclaw deploy core --driver nomad --dry-run` from cluster production-cluster.
job "production-cluster" {
  namespace   = "oclaw-system"
  type        = "service"
  datacenters = ["*"]

  update {
    max_parallel      = 1
    canary            = 1
    auto_promote      = false
    auto_revert       = true
    min_healthy_time  = "10s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
  }

  group "api-server" {
    count = 3

    network {
      port "http" {
        static = 8080
        to = 8080
      }
    }

    service {
      name     = "oclaw-api-server"
      port     = "http"
      provider = "nomad"

      check {
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "api-server" {
      driver       = "docker"
      kill_timeout = "60s"

      config {
        image = "registry.example.com/oclaw:1.3.0"
        args  = ["api-server", "--listen", "0.0.0.0:8080", "--node-id", "${NOMAD_ALLOC_ID}"]
        ports = ["http"]
      }

      template {
        destination = "secrets/env"
        env         = true
        data        = <<-EOT
          OCLAW_STORAGE__URL={{ with nomadVar "oclaw/storage" }}{{ .url }}{{ end }}
          OCLAW_API__TOKENS={{ with nomadVar "oclaw/api" }}{{ .tokens }}{{ end }}
        EOT
      }

      resources {
        cpu        = 2000
        memory     = 4096
        memory_max = 8192
      }
    }
  }

  group "scheduler" {
    count = 2

    network {
      port "http" {
        to = 9090
      }
    }

    service {
      name     = "oclaw-scheduler"
      port     = "http"
      provider = "nomad"

      check {
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "scheduler" {
      driver       = "docker"
      kill_timeout = "60s"

      config {
        image = "registry.example.com/oclaw:1.3.0"
        args  = ["scheduler", "--listen", "0.0.0.0:9090", "--node-id", "${NOMAD_ALLOC_ID}"]
        ports = ["http"]
      }

      template {
        destination = "secrets/env"
        env         = true
        data        = <<-EOT
          OCLAW_STORAGE__URL={{ with nomadVar "oclaw/storage" }}{{ .url }}{{ end }}
          OCLAW_API__TOKENS={{ with nomadVar "oclaw/api" }}{{ .tokens }}{{ end }}
        EOT
      }

      resources {
        cpu        = 2000
        memory     = 4096
        memory_max = 8192
      }
    }
  }

  group "worker" {
    count = 3

    scaling {
      min     = 3
      max     = 20
      enabled = true
    }

    network {
      port "http" {
        to = 9090
      }
    }

    service {
      name     = "oclaw-worker"
      port     = "http"
      provider = "nomad"

      check {
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "worker" {
      driver       = "docker"
      kill_timeout = "60s"

      config {
        image = "registry.example.com/oclaw:1.3.0"
        args  = ["worker", "--listen", "0.0.0.0:9090", "--node-id", "${NOMAD_ALLOC_ID}"]
        ports = ["http"]
      }

      template {
        destination = "secrets/env"
        env         = true
        data        = <<-EOT
          OCLAW_STORAGE__URL={{ with nomadVar "oclaw/storage" }}{{ .url }}{{ end }}
          OCLAW_API__TOKENS={{ with nomadVar "oclaw/api" }}{{ .tokens }}{{ end }}
        EOT
      }

      resources {
        cpu        = 2000
        memory     = 4096
        memory_max = 8192
      }
    }
  }
}
