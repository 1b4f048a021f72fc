"""科普日智能助手: knowledge, NLU components, channels and staff tools."""
