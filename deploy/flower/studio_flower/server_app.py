"""The ServerApp: FedAvg over the SuperNodes, evaluation on the run's test file, the global
adapter published to the server's library."""

from core.lora.federated import deployment_server_app

app = deployment_server_app()
