"""kluis.identity"""
