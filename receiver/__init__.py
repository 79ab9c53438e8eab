"""Where D1 notifications enter the product: HTTP in, workflow signals out."""
