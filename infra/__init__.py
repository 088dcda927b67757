"""Local runtime of visionfn: LocalStack, template deployment, function processes, bridge, gateway."""
